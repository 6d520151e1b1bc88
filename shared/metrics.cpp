// Pool-wide counters and their Prometheus rendering; see metrics.hpp.
#include "metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/mman.h>

#include <algorithm>
#include <new>
#include <string>
#include <vector>

namespace codex {
namespace {

constexpr std::string_view kRouteLabels[] = {"/v1/chat/completions",
                                             "/v1/completions",
                                             "/v1/models",
                                             "/healthz",
                                             "/livez",
                                             "/readyz",
                                             "/metrics",
                                             "/v1/usage",
                                             "/__test",
                                             "other"};
constexpr std::string_view kEndLabels[] = {"done",         "client_gone", "request_timeout",
                                           "idle_timeout", "child_error", "spawn_failed",
                                           "tool_cut",     "shutdown"};
static_assert(std::size(kRouteLabels) == static_cast<size_t>(MetricRoute::Count));
static_assert(std::size(kEndLabels) == static_cast<size_t>(StreamEnd::Count));

constexpr auto kRelaxed = std::memory_order_relaxed;

uint64_t read(const std::atomic<uint64_t>& counter) {
  return counter.load(kRelaxed);
}

}  // namespace

MetricRoute metricRouteFor(std::string_view path) {
  if (path == "/v1/chat/completions") {
    return MetricRoute::Chat;
  }
  if (path == "/v1/completions") {
    return MetricRoute::Completions;
  }
  if (path == "/v1/models" || path.starts_with("/v1/models/")) {
    return MetricRoute::Models;
  }
  if (path == "/healthz") {
    return MetricRoute::Health;
  }
  if (path == "/livez") {
    return MetricRoute::Livez;
  }
  if (path == "/readyz") {
    return MetricRoute::Readyz;
  }
  if (path == "/metrics") {
    return MetricRoute::Metrics;
  }
  if (path == "/v1/usage" || path == "/v1/usage/raw") {
    return MetricRoute::Usage;
  }
  if (path.starts_with("/__test/")) {
    return MetricRoute::Test;
  }
  return MetricRoute::Other;
}

StreamEnd streamEndFor(std::string_view reason) {
  if (reason == "backend_error" || reason == "child_failed" || reason == "child_exit") {
    return StreamEnd::ChildError;
  }
  for (size_t i = 0; i < std::size(kEndLabels); ++i) {
    if (reason == kEndLabels[i] && static_cast<StreamEnd>(i) != StreamEnd::ChildError) {
      return static_cast<StreamEnd>(i);
    }
  }
  return StreamEnd::Count;
}

std::string_view routeLabel(MetricRoute route) {
  return kRouteLabels[static_cast<size_t>(route)];
}

std::string_view streamEndLabel(StreamEnd end) {
  return kEndLabels[static_cast<size_t>(end)];
}

bool PoolMetrics::create() {
  void* memory =
      mmap(nullptr, sizeof(MetricsPage), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    return false;
  }
  // Anonymous pages are zero, which is every counter's start value.
  page_ = new (memory) MetricsPage();
  return true;
}

void PoolMetrics::request(MetricRoute route, int status) const {
  if (page_ == nullptr || route >= MetricRoute::Count) {
    return;
  }
  int index = status >= 100 && status < MetricsPage::kStatuses ? status : 0;
  page_->requests[static_cast<int>(route)][index].fetch_add(1, kRelaxed);
}

void PoolMetrics::streamEnded(StreamEnd end) const {
  if (page_ != nullptr && end < StreamEnd::Count) {
    page_->stream_ends[static_cast<int>(end)].fetch_add(1, kRelaxed);
  }
}

void PoolMetrics::admission(bool admitted) const {
  if (page_ != nullptr) {
    (admitted ? page_->streams_admitted : page_->streams_rejected).fetch_add(1, kRelaxed);
  }
}

void PoolMetrics::rateLimited() const {
  if (page_ != nullptr) {
    page_->rate_limited.fetch_add(1, kRelaxed);
  }
}

void PoolMetrics::firstByte(double seconds) const {
  if (page_ == nullptr) {
    return;
  }
  size_t bucket = std::lower_bound(kFirstByteBuckets.begin(), kFirstByteBuckets.end(), seconds) -
                  kFirstByteBuckets.begin();
  page_->first_byte_buckets[bucket].fetch_add(1, kRelaxed);
  page_->first_byte_micros.fetch_add(static_cast<uint64_t>(std::max(seconds, 0.0) * 1e6), kRelaxed);
}

// prometheus-cpp keeps live metrics in a registry; a scrape builds a throwaway one from the
// shared page, so the library does the text format and the page stays the single source.
std::string renderMetrics(const MetricsPage& page, const MetricsGauges& gauges) {
  using namespace prometheus;
  Registry registry;
  auto counter = [&](const char* name, const char* help) -> Family<Counter>& {
    return BuildCounter().Name(name).Help(help).Register(registry);
  };
  auto gauge = [&](const char* name, const char* help) -> Family<Gauge>& {
    return BuildGauge().Name(name).Help(help).Register(registry);
  };

  gauge("codex_gateway_open_streams", "Streams open across the pool now.")
      .Add({})
      .Set(gauges.open_streams);
  gauge("codex_gateway_stream_limit", "PROXY_SSE_MAX_CONCURRENCY; 0 means no cap.")
      .Add({})
      .Set(static_cast<double>(gauges.stream_limit));
  auto& admissions = counter("codex_gateway_stream_admissions_total",
                             "Stream requests admitted or rejected (429) by the cap.");
  admissions.Add({{"result", "admitted"}}).Increment(read(page.streams_admitted));
  admissions.Add({{"result", "rejected"}}).Increment(read(page.streams_rejected));

  auto& requests = counter("codex_gateway_requests_total", "Responses by route and status.");
  for (int route = 0; route < static_cast<int>(MetricRoute::Count); ++route) {
    for (int status = 0; status < MetricsPage::kStatuses; ++status) {
      if (uint64_t count = read(page.requests[route][status]); count > 0) {
        requests
            .Add({{"route", std::string(routeLabel(static_cast<MetricRoute>(route)))},
                  {"status", std::to_string(status)}})
            .Increment(static_cast<double>(count));
      }
    }
  }
  auto& ends = counter("codex_gateway_stream_ends_total", "Admitted streams by how they ended.");
  for (int end = 0; end < static_cast<int>(StreamEnd::Count); ++end) {
    ends.Add({{"reason", std::string(streamEndLabel(static_cast<StreamEnd>(end)))}})
        .Increment(static_cast<double>(read(page.stream_ends[end])));
  }
  counter("codex_gateway_rate_limited_total", "Completion requests refused by the rate limiter.")
      .Add({})
      .Increment(static_cast<double>(read(page.rate_limited)));

  std::vector<double> buckets;
  for (const auto& bucket : page.first_byte_buckets) {
    buckets.push_back(static_cast<double>(read(bucket)));
  }
  BuildHistogram()
      .Name("codex_gateway_child_first_byte_seconds")
      .Help("From spawning the child to its first output byte.")
      .Register(registry)
      .Add({}, Histogram::BucketBoundaries(kFirstByteBuckets.begin(), kFirstByteBuckets.end()))
      .ObserveMultiple(buckets, static_cast<double>(read(page.first_byte_micros)) / 1e6);

  gauge("codex_gateway_workers", "Live workers of the current configuration.")
      .Add({})
      .Set(static_cast<double>(page.workers.load(kRelaxed)));
  counter("codex_gateway_worker_restarts_total", "Workers replaced after they died.")
      .Add({})
      .Increment(static_cast<double>(read(page.worker_restarts)));
  gauge("codex_gateway_worker_young_deaths",
        "Workers in a row that died within 10 s of starting; 5 or more is a crash loop.")
      .Add({})
      .Set(static_cast<double>(page.young_deaths.load(kRelaxed)));
  gauge("codex_gateway_worker_respawn_delay_seconds",
        "Back-off given to the latest replacement; it doubles with each young death.")
      .Add({})
      .Set(static_cast<double>(page.last_respawn_delay_ms.load(kRelaxed)) / 1000.0);
  auto& reloads = counter("codex_gateway_config_reloads_total", "SIGHUP reloads by result.");
  reloads.Add({{"result", "ok"}}).Increment(static_cast<double>(read(page.reloads_ok)));
  reloads.Add({{"result", "failed"}}).Increment(static_cast<double>(read(page.reloads_failed)));

  return TextSerializer().Serialize(registry.Collect());
}

}  // namespace codex
