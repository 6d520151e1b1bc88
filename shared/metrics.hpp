// Pool-wide counters for GET /metrics.
//
// The supervisor maps one anonymous shared page set before it forks any worker, so every worker
// of the pool (and every replacement or rolled worker, which are forked the same way) adds into
// the same atomics, and any worker can answer a scrape for the whole pool. A new pool starts from
// zero, which Prometheus reads as a counter reset.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace codex {

// Label values are fixed sets, so the page has a fixed size and a client cannot grow the
// series count by inventing paths or reasons.
enum class MetricRoute : uint8_t {
  Chat,
  Completions,
  Models,
  Health,
  Livez,
  Readyz,
  Metrics,
  Usage,
  Test,
  Other,
  Count
};

enum class StreamEnd : uint8_t {
  Done,
  ClientGone,
  RequestTimeout,
  IdleTimeout,
  ChildError,  // the child exited early, crashed, or reported a backend error
  SpawnFailed,
  ToolCut,
  Shutdown,
  Count
};

MetricRoute metricRouteFor(std::string_view normalised_path);
// Maps a completion run's end_reason; StreamEnd::Count for reasons that do not end a stream.
StreamEnd streamEndFor(std::string_view end_reason);
std::string_view routeLabel(MetricRoute route);
std::string_view streamEndLabel(StreamEnd end);

// Upper bounds of the spawn-to-first-byte histogram, in seconds: the real CLI answers in about
// 0.15 s, so the buckets are finest there.
inline constexpr std::array<double, 11> kFirstByteBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                             0.5,   1,    2.5,   5,    10};

struct MetricsPage {
  // Indexed by status code; 0 is a request whose client left before any response.
  static constexpr int kStatuses = 600;
  using Counter = std::atomic<uint64_t>;

  Counter requests[static_cast<int>(MetricRoute::Count)][kStatuses];
  Counter stream_ends[static_cast<int>(StreamEnd::Count)];
  Counter streams_admitted;
  Counter streams_rejected;
  Counter rate_limited;
  Counter first_byte_buckets[kFirstByteBuckets.size() + 1];  // the last is +Inf
  Counter first_byte_micros;
  Counter worker_restarts;
  Counter reloads_ok;
  Counter reloads_failed;
  // Gauges the supervisor alone sets.
  std::atomic<int64_t> workers;                // live workers of the current configuration
  std::atomic<int64_t> young_deaths;           // workers in a row that died soon after start
  std::atomic<int64_t> last_respawn_delay_ms;  // back-off given to the latest replacement
};

static_assert(std::atomic<uint64_t>::is_always_lock_free, "counters are shared across processes");

class PoolMetrics {
 public:
  // Maps the page; call before forking so the children share it. Returns false on failure, in
  // which case every record is a no-op and a scrape reports nothing but the gauges.
  bool create();

  void request(MetricRoute route, int status) const;
  void streamEnded(StreamEnd end) const;
  void admission(bool admitted) const;
  void rateLimited() const;
  void firstByte(double seconds) const;

  MetricsPage* page() const { return page_; }

 private:
  MetricsPage* page_ = nullptr;
};

// What a scrape needs besides the page: the live values read from the slot table and config.
struct MetricsGauges {
  uint32_t open_streams = 0;
  int64_t stream_limit = 0;  // 0: no cap
};

// The Prometheus text exposition of the page and the gauges.
std::string renderMetrics(const MetricsPage& page, const MetricsGauges& gauges);

}  // namespace codex
