// The usage log and its read side; see usage_log.hpp.
#include "usage_log.hpp"

#include <fcntl.h>
#include <simdjson.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "json_writer.hpp"
#include "text.hpp"

namespace codex {
namespace {

using simdjson::dom::element;

constexpr int64_t kHourMs = 3600 * 1000;
constexpr int64_t kDayMs = 24 * kHourMs;
constexpr int64_t kDefaultRawLimit = 200;
constexpr int64_t kMaxRawLimit = 10000;

int hexDigit(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// Form decoding as browsers and query-string libraries do it: '+' is a space (so an offset such
// as "+02:00" must be sent as %2B02:00) and %XX a byte; a malformed escape is kept as is.
std::string formDecoded(std::string_view text) {
  std::string out;

  for (size_t i = 0; i < text.size(); ++i) {
    int high = i + 2 < text.size() && text[i] == '%' ? hexDigit(text[i + 1]) : -1;
    int low = high >= 0 ? hexDigit(text[i + 2]) : -1;
    if (low >= 0) {
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else {
      out.push_back(text[i] == '+' ? ' ' : text[i]);
    }
  }
  return out;
}

// The first value of `name` in a raw query string, decoded.
std::optional<std::string> queryValue(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? "" : query.substr(amp + 1);
    size_t eq = pair.find('=');
    if (formDecoded(pair.substr(0, eq)) == name) {
      return eq == std::string_view::npos ? "" : formDecoded(pair.substr(eq + 1));
    }
  }
  return std::nullopt;
}

// Epoch milliseconds as digits, or an ISO-8601 date.
std::optional<int64_t> timeParam(const std::optional<std::string>& value) {
  if (!value) {
    return std::nullopt;
  }
  std::string_view text = trim(*value);
  int64_t ms = 0;

  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
  if (!text.empty() && ec == std::errc() && end == text.data() + text.size()) {
    return ms;
  }
  return parseIsoTime(text);
}

// Milliseconds of a ".123456" fraction at `*rest`, which is moved past it.
int64_t fractionMs(const char*& rest) {
  if (*rest != '.' || std::isdigit(static_cast<unsigned char>(rest[1])) == 0) {
    return 0;
  }
  int64_t ms = 0;
  int digits = 0;

  for (++rest; std::isdigit(static_cast<unsigned char>(*rest)) != 0; ++rest, ++digits) {
    ms = digits < 3 ? ms * 10 + (*rest - '0') : ms;
  }
  for (; digits < 3; ++digits) {
    ms *= 10;
  }
  return ms;
}

// timegm(3) normalises 2025-02-31 into March; a date that does not survive the round trip is
// not a date.
std::optional<int64_t> utcSeconds(struct tm fields) {
  struct tm copy = fields;
  time_t seconds = timegm(&copy);
  struct tm back {};

  if (gmtime_r(&seconds, &back) == nullptr || back.tm_year != fields.tm_year ||
      back.tm_mon != fields.tm_mon || back.tm_mday != fields.tm_mday ||
      back.tm_hour != fields.tm_hour || back.tm_min != fields.tm_min ||
      back.tm_sec != fields.tm_sec) {
    return std::nullopt;
  }
  return static_cast<int64_t>(seconds);
}

int64_t floorTo(int64_t ts, int64_t unit) {
  return ts - ((ts % unit) + unit) % unit;
}

std::optional<element> member(element object, std::string_view name) {
  element value;

  if (object[name].get(value) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  return value;
}

// Integers as written by usageLine; doubles (other writers) are truncated.
std::optional<int64_t> numberAt(element object, std::string_view name) {
  auto value = member(object, name);
  int64_t number;
  double real;

  if (value && value->get(number) == simdjson::SUCCESS) {
    return number;
  }
  if (value && value->get(real) == simdjson::SUCCESS && std::isfinite(real)) {
    return static_cast<int64_t>(real);
  }
  return std::nullopt;
}

// Calls `visit(object, line)` for every line of `ndjson` that is a JSON object; the rest is
// skipped (a torn line after a crash, a line someone edited by hand).
template <typename Visit>
void forEachEvent(std::string_view ndjson, Visit visit) {
  simdjson::dom::parser parser;

  while (!ndjson.empty()) {
    size_t newline = ndjson.find('\n');
    std::string_view line = trim(ndjson.substr(0, newline));
    ndjson = newline == std::string_view::npos ? "" : ndjson.substr(newline + 1);
    element root;
    if (!line.empty() && parser.parse(line.data(), line.size()).get(root) == simdjson::SUCCESS &&
        root.is_object()) {
      visit(root, line);
    }
  }
}

struct Totals {
  int64_t requests = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t total_tokens = 0;

  // Sums the counts the clients were told, not the estimates: the `*_est` keys of the response
  // are the spec's names (§21.2, kept for its clients), their values are actual counts (Q19). A
  // line without them predates this schema, when `*_est` held the final counts of non-streams.
  void add(element event) {
    int64_t prompt =
        numberAt(event, "prompt_tokens").value_or(numberAt(event, "prompt_tokens_est").value_or(0));
    int64_t completion = numberAt(event, "completion_tokens")
                             .value_or(numberAt(event, "completion_tokens_est").value_or(0));

    requests += 1;
    prompt_tokens += prompt;
    completion_tokens += completion;
    total_tokens +=
        numberAt(event, "total_tokens")
            .value_or(numberAt(event, "total_tokens_est").value_or(prompt + completion));
  }

  void write(JsonWriter& w, std::string_view requests_key) const {
    w.field(requests_key, requests);
    w.field("prompt_tokens_est", prompt_tokens);
    w.field("completion_tokens_est", completion_tokens);
    w.field("total_tokens_est", total_tokens);
  }
};

}  // namespace

std::string usageLine(const UsageEntry& e) {
  JsonWriter w;

  w.beginObject().field("ts", e.ts).field("req_id", e.req_id).field("route", e.route);
  w.field("method", e.method).field("requested_model", e.requested_model);
  w.field("effective_model", e.effective_model).field("stream", e.stream);
  w.field("prompt_tokens", e.prompt_tokens).field("completion_tokens", e.completion_tokens);
  w.field("total_tokens", e.total_tokens).field("prompt_tokens_est", e.prompt_tokens_est);
  w.field("completion_tokens_est", e.completion_tokens_est);
  w.field("total_tokens_est", e.total_tokens_est).field("duration_ms", e.duration_ms);
  w.field("status", e.status).field("user_agent", e.user_agent).field("end_reason", e.end_reason);
  w.field("emission_trigger", e.emission_trigger).field("counts_source", e.counts_source);
  w.field("usage_included", e.usage_included).field("provider_supplied", e.provider_supplied);
  w.endObject();
  return w.take() + "\n";
}

NdjsonLog::~NdjsonLog() {
  if (fd_ >= 0) {
    close(fd_);
  }
}

std::optional<std::string> NdjsonLog::open(const std::string& path, NdjsonLog& log) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;

  if (!parent.empty()) {
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return fmt::format("cannot create {}: {}", parent.string(), ec.message());
    }
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    return fmt::format("cannot open {}: {}", path, strerror(errno));
  }
  if (log.fd_ >= 0) {
    close(log.fd_);
  }
  log.fd_ = fd;
  return std::nullopt;
}

bool NdjsonLog::append(const UsageEntry& entry) const {
  return appendLine(usageLine(entry));
}

bool NdjsonLog::appendLine(std::string_view line) const {
  if (fd_ < 0) {
    errno = EBADF;
    return false;
  }
  ssize_t written;

  // Nothing was written when EINTR is returned, so trying again cannot split the line.
  do {
    written = write(fd_, line.data(), line.size());
  } while (written < 0 && errno == EINTR);
  if (written < 0) {
    return false;
  }
  if (static_cast<size_t>(written) != line.size()) {
    errno = ENOSPC;  // a short write to a regular file means the disk or a quota is full
    return false;
  }
  return true;
}

std::optional<int64_t> parseIsoTime(std::string_view text) {
  // Longest first: "%Y-%m-%d" alone would also accept the start of a date-time.
  static constexpr const char* kFormats[] = {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
                                             "%Y-%m-%dT%H:%M", "%Y-%m-%d"};
  std::string input(text);  // strptime reads a C string

  for (const char* format : kFormats) {
    struct tm fields {};
    const char* rest = strptime(input.c_str(), format, &fields);
    if (rest == nullptr) {
      continue;
    }
    int64_t ms = fractionMs(rest);
    struct tm zone {};
    // glibc's %z takes "Z", "+hh:mm", "+hhmm" and "+hh"; no offset means UTC, never the
    // server's zone (Q21).
    if (*rest != '\0' && (rest = strptime(rest, "%z", &zone)) == nullptr) {
      continue;
    }
    auto seconds = *rest == '\0' ? utcSeconds(fields) : std::nullopt;
    if (seconds) {
      return (*seconds - zone.tm_gmtoff) * 1000 + ms;
    }
  }
  return std::nullopt;
}

std::string isoTime(int64_t epoch_ms) {
  int64_t ms = floorTo(epoch_ms, 1000);
  auto seconds = static_cast<time_t>(ms / 1000);
  struct tm t {};

  gmtime_r(&seconds, &t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", t.tm_year + 1900, t.tm_mon + 1,
                     t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, epoch_ms - ms);
}

std::variant<UsageQuery, ApiError> parseUsageQuery(std::string_view query, int64_t now_ms) {
  UsageQuery parsed;
  std::string group = queryValue(query, "group").value_or("");

  parsed.start = timeParam(queryValue(query, "start")).value_or(0);
  auto end = timeParam(queryValue(query, "end"));
  parsed.end = end && *end != 0 ? *end : now_ms + 1;
  if (group == "hour") {
    parsed.group = UsageGroup::Hour;
  } else if (group == "day") {
    parsed.group = UsageGroup::Day;
  } else if (!group.empty()) {
    return errors::invalidField("group", "group must be 'hour' or 'day'");
  }
  return parsed;
}

std::string usageSummaryBody(std::string_view ndjson, const UsageQuery& query) {
  int64_t unit = query.group == UsageGroup::Day ? kDayMs : kHourMs;
  Totals all;
  std::map<int64_t, Totals> buckets;  // ordered: ascending bucket starts

  forEachEvent(ndjson, [&](element event, std::string_view) {
    int64_t ts = numberAt(event, "ts").value_or(0);
    if (ts < query.start || ts >= query.end) {
      return;
    }
    all.add(event);
    if (query.group != UsageGroup::None) {
      buckets[floorTo(ts, unit)].add(event);
    }
  });

  JsonWriter w;
  w.beginObject().field("start", query.start).field("end", query.end);
  if (query.group != UsageGroup::None) {
    w.field("group", query.group == UsageGroup::Day ? "day" : "hour");
  }
  all.write(w, "total_requests");
  if (query.group != UsageGroup::None) {
    w.key("buckets").beginArray();
    for (const auto& [start, totals] : buckets) {
      w.beginObject().field("ts", isoTime(start));
      totals.write(w, "requests");
      w.endObject();
    }
    w.endArray();
  }
  w.endObject();
  return w.take();
}

int64_t parseRawLimit(std::string_view query) {
  std::string value = queryValue(query, "limit").value_or("");
  std::string_view text = trim(value);
  double limit = 0;

  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      !std::isfinite(limit) || limit <= 0) {
    return kDefaultRawLimit;
  }
  return std::clamp<int64_t>(
      static_cast<int64_t>(std::min<double>(std::floor(limit), kMaxRawLimit)), 1, kMaxRawLimit);
}

std::string usageRawBody(std::string_view ndjson, int64_t limit) {
  std::deque<std::string_view> last;

  forEachEvent(ndjson, [&](element, std::string_view line) {
    last.push_back(line);
    if (static_cast<int64_t>(last.size()) > limit) {
      last.pop_front();
    }
  });

  JsonWriter w;
  w.beginObject().field("count", static_cast<int64_t>(last.size())).key("events").beginArray();
  for (std::string_view line : last) {
    w.raw(line);  // parsed as a JSON object above, so valid as it stands
  }
  w.endArray().endObject();
  return w.take();
}

}  // namespace codex
