// The usage log (TOKEN_LOG_PATH): one NDJSON line per completion request, appended by every
// worker process, and the pure functions behind GET /v1/usage and GET /v1/usage/raw.
//
// Every completion request that reached the child is logged with one schema (spec §21.1, Q19):
// the counts the client was told (`prompt_tokens`...), the pure estimates (`*_est`) and the
// status it really got. The endpoints read the whole file and parse every line once per request;
// the cost grows with the log, which is fine for a local proxy whose operators rotate the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "openai.hpp"

namespace codex {

struct UsageEntry {
  int64_t ts = 0;  // epoch milliseconds when the request ended
  std::string req_id;
  std::string route;
  std::string method;
  std::string requested_model;
  std::string effective_model;
  bool stream = false;
  int64_t prompt_tokens = 0;  // as reported to the client (events, else estimates)
  int64_t completion_tokens = 0;
  int64_t total_tokens = 0;
  int64_t prompt_tokens_est = 0;  // always the estimates, whatever the events said
  int64_t completion_tokens_est = 0;
  int64_t total_tokens_est = 0;
  int64_t duration_ms = 0;
  int status = 0;
  std::string user_agent;
  std::string end_reason;
  std::string emission_trigger;
  std::string counts_source;  // "event" or "estimate"
  bool usage_included = false;
  bool provider_supplied = false;
};

// One JSON object and its '\n'.
std::string usageLine(const UsageEntry& entry);

// The log file, opened once per worker process and shared by its request threads.
//
// Each entry is one write(2) on a descriptor opened with O_APPEND. On Linux a write to a regular
// file holds the inode lock for its whole length and O_APPEND moves to the end under that lock,
// so lines from concurrent threads and processes never interleave, whatever their size (local
// file systems such as ext4, xfs, btrfs and tmpfs; NFS gives no such promise). A short write
// (disk full) is not completed: a second write could land after another appender's line.
class NdjsonLog {
 public:
  NdjsonLog() = default;
  NdjsonLog(const NdjsonLog&) = delete;
  NdjsonLog& operator=(const NdjsonLog&) = delete;
  ~NdjsonLog();

  // Creates the file's directory and opens the file for appending. Returns the error text.
  static std::optional<std::string> open(const std::string& path, NdjsonLog& log);

  bool isOpen() const { return fd_ >= 0; }
  // Writes the entry as one line; false (errno set) when the log is closed or the write fell
  // short. Safe from any thread.
  bool append(const UsageEntry& entry) const;
  // Writes one complete line (ending in '\n') with a single write.
  bool appendLine(std::string_view line) const;

 private:
  int fd_ = -1;
};

enum class UsageGroup { None, Hour, Day };

struct UsageQuery {
  int64_t start = 0;  // epoch ms, inclusive
  int64_t end = 0;    // epoch ms, exclusive
  UsageGroup group = UsageGroup::None;
};

// `start`, `end` (epoch ms digits or an ISO-8601 date/time; a time without an offset is UTC) and
// `group` (hour|day) from a raw query string. Invalid or missing start -> 0; invalid, missing or
// zero end -> now + 1 ms. An unknown group is a 400 naming the parameter.
std::variant<UsageQuery, ApiError> parseUsageQuery(std::string_view query, int64_t now_ms);

// Epoch milliseconds of an ISO-8601 date ("2025-01-01") or date-time ("2025-01-01T01:02:03.456Z",
// "...+02:00"), parsed with strptime(3) and timegm(3).
std::optional<int64_t> parseIsoTime(std::string_view text);

// "2025-01-01T01:00:00.000Z".
std::string isoTime(int64_t epoch_ms);

// The GET /v1/usage body for the NDJSON text of the log.
std::string usageSummaryBody(std::string_view ndjson, const UsageQuery& query);

// `limit` of GET /v1/usage/raw: a finite number > 0, floored and clamped to [1, 10000]; else 200.
int64_t parseRawLimit(std::string_view query);

// {"count":N,"events":[...]}: the last `limit` lines that parse as JSON objects, oldest first.
std::string usageRawBody(std::string_view ndjson, int64_t limit);

}  // namespace codex
