// The usage log: its line format, the append that many worker processes share, and the pure
// functions behind GET /v1/usage and /v1/usage/raw.
#include <doctest/doctest.h>
#include <simdjson.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "usage_log.hpp"

namespace codex {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kNow = 1767225600000;  // 2026-01-01T00:00:00Z

// A private directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/codex-usage-test-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string path(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> linesOf(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

UsageEntry sampleEntry() {
  UsageEntry e;
  e.ts = 1735693200123;
  e.req_id = "req-abc";
  e.route = "/v1/chat/completions";
  e.method = "POST";
  e.requested_model = "codex-5";
  e.effective_model = "gpt-5";
  e.stream = true;
  e.prompt_tokens = 8;
  e.completion_tokens = 6;
  e.total_tokens = 14;
  e.prompt_tokens_est = 1;
  e.completion_tokens_est = 6;
  e.total_tokens_est = 7;
  e.duration_ms = 42;
  e.status = 200;
  e.user_agent = "curl/8 \"quoted\"\nnext";
  e.end_reason = "done";
  e.emission_trigger = "token_count";
  e.counts_source = "event";
  e.usage_included = true;
  e.provider_supplied = false;
  return e;
}

// One NDJSON line with the fields the aggregation reads.
std::string event(int64_t ts, int64_t prompt, int64_t completion) {
  return fmt::format(R"({{"ts":{},"prompt_tokens":{},"completion_tokens":{},"total_tokens":{},)"
                     R"("prompt_tokens_est":1,"completion_tokens_est":1,"total_tokens_est":2}})",
                     ts, prompt, completion, prompt + completion);
}

UsageQuery queryOf(std::string_view text) {
  auto parsed = parseUsageQuery(text, kNow);
  REQUIRE(std::holds_alternative<UsageQuery>(parsed));
  return std::get<UsageQuery>(parsed);
}

// Runs `body` with TZ set to `zone`, so a result that depended on the server's zone would show.
template <typename Body>
void inTimeZone(const char* zone, Body body) {
  const char* saved = getenv("TZ");
  std::string previous = saved != nullptr ? saved : "";

  setenv("TZ", zone, 1);
  tzset();
  body();
  if (saved != nullptr) {
    setenv("TZ", previous.c_str(), 1);
  } else {
    unsetenv("TZ");
  }
  tzset();
}

TEST_CASE("usage line is one JSON object with every field, ending in one newline") {
  std::string line = usageLine(sampleEntry());

  REQUIRE(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);  // the user agent's newline is escaped
  simdjson::dom::parser parser;
  simdjson::dom::element e = parser.parse(line).value();
  CHECK(int64_t(e["ts"]) == 1735693200123);
  CHECK(std::string_view(e["req_id"]) == "req-abc");
  CHECK(std::string_view(e["route"]) == "/v1/chat/completions");
  CHECK(std::string_view(e["method"]) == "POST");
  CHECK(std::string_view(e["requested_model"]) == "codex-5");
  CHECK(std::string_view(e["effective_model"]) == "gpt-5");
  CHECK(bool(e["stream"]));
  CHECK(int64_t(e["prompt_tokens"]) == 8);
  CHECK(int64_t(e["completion_tokens"]) == 6);
  CHECK(int64_t(e["total_tokens"]) == 14);
  CHECK(int64_t(e["prompt_tokens_est"]) == 1);
  CHECK(int64_t(e["completion_tokens_est"]) == 6);
  CHECK(int64_t(e["total_tokens_est"]) == 7);
  CHECK(int64_t(e["duration_ms"]) == 42);
  CHECK(int64_t(e["status"]) == 200);
  CHECK(std::string_view(e["user_agent"]) == "curl/8 \"quoted\"\nnext");
  CHECK(std::string_view(e["end_reason"]) == "done");
  CHECK(std::string_view(e["emission_trigger"]) == "token_count");
  CHECK(std::string_view(e["counts_source"]) == "event");
  CHECK(bool(e["usage_included"]));
  CHECK_FALSE(bool(e["provider_supplied"]));
  CHECK(simdjson::dom::object(e).size() == 21);
}

TEST_CASE("usage log open creates the missing directory and appends whole lines") {
  TempDir dir;
  std::string path = dir.path("a/b/usage.ndjson");
  NdjsonLog log;

  CHECK_FALSE(log.append(sampleEntry()));  // not open yet
  REQUIRE_FALSE(NdjsonLog::open(path, log).has_value());
  CHECK(log.isOpen());
  CHECK(log.append(sampleEntry()));
  CHECK(log.append(sampleEntry()));
  CHECK(readAll(path) == usageLine(sampleEntry()) + usageLine(sampleEntry()));
}

TEST_CASE("usage log open reports a path it cannot create") {
  TempDir dir;
  std::ofstream(dir.path("file")) << "x";
  NdjsonLog log;

  auto error = NdjsonLog::open(dir.path("file/usage.ndjson"), log);
  REQUIRE(error.has_value());
  CHECK(error->find("file") != std::string::npos);
  CHECK_FALSE(log.isOpen());
}

TEST_CASE("usage log: 8 processes appending 500 lines of about 1 KB each leave only whole lines") {
  constexpr int kProcesses = 8;
  constexpr int kLines = 500;
  TempDir dir;
  std::string path = dir.path("usage.ndjson");
  int go[2];
  std::vector<pid_t> children;

  REQUIRE(pipe(go) == 0);
  for (int p = 0; p < kProcesses; ++p) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      // Like a worker: its own descriptor, opened after the fork.
      close(go[1]);
      NdjsonLog log;
      bool ok = !NdjsonLog::open(path, log).has_value();
      char byte;
      while (read(go[0], &byte, 1) > 0) {  // everyone starts when the parent closes the pipe
      }
      UsageEntry e = sampleEntry();
      e.user_agent = std::string(1000, static_cast<char>('a' + p));
      for (int i = 0; i < kLines && ok; ++i) {
        e.req_id = fmt::format("p{}-{}", p, i);
        ok = log.append(e);
      }
      _exit(ok ? 0 : 1);
    }
    children.push_back(pid);
  }
  close(go[0]);
  close(go[1]);
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  }

  auto lines = linesOf(readAll(path));
  REQUIRE(lines.size() == kProcesses * kLines);
  simdjson::dom::parser parser;
  std::vector<int> next(kProcesses, 0);
  int whole = 0;
  for (const auto& line : lines) {
    simdjson::dom::element e;
    if (parser.parse(line).get(e) != simdjson::SUCCESS) {
      continue;
    }
    std::string_view agent = e["user_agent"];
    std::string_view id = e["req_id"];
    int p = agent.front() - 'a';
    // Each process's lines are whole, unmixed and in its own order.
    bool ordered = p >= 0 && p < kProcesses && agent == std::string(1000, agent.front()) &&
                   id == fmt::format("p{}-{}", p, next[p]);
    if (ordered) {
      ++next[p];
      ++whole;
    }
  }
  CHECK(whole == kProcesses * kLines);
}

TEST_CASE("usage query: epoch digits, ISO dates and the defaults") {
  UsageQuery none = queryOf("");
  CHECK(none.start == 0);
  CHECK(none.end == kNow + 1);
  CHECK(none.group == UsageGroup::None);

  UsageQuery digits = queryOf("start=1000&end=2000");
  CHECK(digits.start == 1000);
  CHECK(digits.end == 2000);

  CHECK(queryOf("end=0").end == kNow + 1);
  CHECK(queryOf("start=soon&end=later").start == 0);
  CHECK(queryOf("start=soon&end=later").end == kNow + 1);
  CHECK(queryOf("start=2025-01-01").start == 1735689600000);
  CHECK(queryOf("start=2025-01-01T01%3A00%3A00.250Z").start == 1735693200250);
  CHECK(queryOf("end=2025-01-01T02:00:00%2B01:00").end == 1735693200000);
  CHECK(queryOf("start=2025-02-31").start == 0);  // not a date
  CHECK(queryOf("group=hour").group == UsageGroup::Hour);
  CHECK(queryOf("group=day&start=5").group == UsageGroup::Day);
  CHECK(queryOf("group=").group == UsageGroup::None);
}

TEST_CASE("usage query with an unknown group is a 400 naming the group parameter") {
  auto parsed = parseUsageQuery("group=week", kNow);

  REQUIRE(std::holds_alternative<ApiError>(parsed));
  const ApiError& error = std::get<ApiError>(parsed);
  CHECK(error.status == 400);
  CHECK(error.type == "invalid_request_error");
  CHECK(error.param == "group");
}

TEST_CASE("usage ISO times: fractions, offsets, no offset means UTC, junk is rejected") {
  inTimeZone("America/New_York", [] {
    CHECK(parseIsoTime("2025-01-01T01:00:00") == 1735693200000);
    CHECK(parseIsoTime("2025-01-01 01:00:00") == 1735693200000);
    CHECK(parseIsoTime("2025-01-01T01:00Z") == 1735693200000);
    CHECK(parseIsoTime("2025-01-01T01:00:00.5Z") == 1735693200500);
    CHECK(parseIsoTime("2025-01-01T01:00:00.123456Z") == 1735693200123);
    CHECK(parseIsoTime("2025-01-01T06:30:00+05:30") == 1735693200000);
    CHECK(parseIsoTime("2024-12-31T20:00:00-0500") == 1735693200000);
  });
  CHECK_FALSE(parseIsoTime("2025-01-01T01:00:00Zjunk").has_value());
  CHECK_FALSE(parseIsoTime("2025-13-01").has_value());
  CHECK_FALSE(parseIsoTime("yesterday").has_value());
  CHECK_FALSE(parseIsoTime("").has_value());
}

TEST_CASE("usage ISO rendering has milliseconds and a Z") {
  CHECK(isoTime(1735693200000) == "2025-01-01T01:00:00.000Z");
  CHECK(isoTime(1735693200123) == "2025-01-01T01:00:00.123Z");
  CHECK(isoTime(0) == "1970-01-01T00:00:00.000Z");
}

TEST_CASE("usage summary sums the actual counts and buckets by UTC hour, ascending") {
  constexpr int64_t kHour1 = 1735693200000;                     // 2025-01-01T01:00:00Z
  std::string log = event(kHour1 + 3600000 + 5, 1, 2) + "\n" +  // 02:00, listed first
                    event(kHour1 + 10, 8, 6) + "\n" + "not json at all\n" +
                    event(kHour1 + 3599999, 9, 5) + "\n" + "\n" +
                    event(kHour1 + 7200000, 100, 100) + "\n";  // at `end`: excluded

  inTimeZone("Asia/Kolkata", [&] {  // +05:30: local flooring would shift every bucket
    UsageQuery query{kHour1, kHour1 + 7200000, UsageGroup::Hour};
    simdjson::dom::parser parser;
    simdjson::dom::element body = parser.parse(usageSummaryBody(log, query)).value();

    CHECK(int64_t(body["start"]) == kHour1);
    CHECK(int64_t(body["end"]) == kHour1 + 7200000);
    CHECK(std::string_view(body["group"]) == "hour");
    CHECK(int64_t(body["total_requests"]) == 3);
    CHECK(int64_t(body["prompt_tokens_est"]) == 18);
    CHECK(int64_t(body["completion_tokens_est"]) == 13);
    CHECK(int64_t(body["total_tokens_est"]) == 31);
    simdjson::dom::array buckets = body["buckets"];
    REQUIRE(buckets.size() == 2);
    CHECK(std::string_view(buckets.at(0)["ts"]) == "2025-01-01T01:00:00.000Z");
    CHECK(int64_t(buckets.at(0)["requests"]) == 2);
    CHECK(int64_t(buckets.at(0)["prompt_tokens_est"]) == 17);
    CHECK(int64_t(buckets.at(0)["completion_tokens_est"]) == 11);
    CHECK(int64_t(buckets.at(0)["total_tokens_est"]) == 28);
    CHECK(std::string_view(buckets.at(1)["ts"]) == "2025-01-01T02:00:00.000Z");
    CHECK(int64_t(buckets.at(1)["requests"]) == 1);
  });
}

TEST_CASE("usage summary buckets by UTC day across midnight") {
  constexpr int64_t kDay = 1735689600000;  // 2025-01-01T00:00:00Z
  std::string log = event(kDay - 1, 1, 1) + "\n" + event(kDay, 2, 2) + "\n" +
                    event(kDay + 86399999, 3, 3) + "\n" + event(kDay + 86400000, 4, 4) + "\n";

  inTimeZone("America/Los_Angeles", [&] {
    simdjson::dom::parser parser;
    simdjson::dom::element body = parser.parse(usageSummaryBody(log, queryOf("group=day"))).value();
    simdjson::dom::array buckets = body["buckets"];

    CHECK(int64_t(body["total_requests"]) == 4);
    REQUIRE(buckets.size() == 3);
    CHECK(std::string_view(buckets.at(0)["ts"]) == "2024-12-31T00:00:00.000Z");
    CHECK(std::string_view(buckets.at(1)["ts"]) == "2025-01-01T00:00:00.000Z");
    CHECK(int64_t(buckets.at(1)["requests"]) == 2);
    CHECK(int64_t(buckets.at(1)["total_tokens_est"]) == 10);
    CHECK(std::string_view(buckets.at(2)["ts"]) == "2025-01-02T00:00:00.000Z");
  });
}

TEST_CASE("usage summary without a group has neither group nor buckets; no ts counts as 0") {
  std::string log = R"({"prompt_tokens":3,"completion_tokens":4,"total_tokens":7})"
                    "\n" +
                    event(50, 1, 1) + "\n";
  simdjson::dom::parser parser;

  simdjson::dom::element all = parser.parse(usageSummaryBody(log, queryOf(""))).value();
  CHECK(int64_t(all["total_requests"]) == 2);
  CHECK(int64_t(all["total_tokens_est"]) == 9);
  CHECK(all["group"].error() == simdjson::NO_SUCH_FIELD);
  CHECK(all["buckets"].error() == simdjson::NO_SUCH_FIELD);

  simdjson::dom::element later = parser.parse(usageSummaryBody(log, queryOf("start=1"))).value();
  CHECK(int64_t(later["total_requests"]) == 1);
}

TEST_CASE("usage summary of lines from before this schema sums their *_est fields") {
  std::string log =
      R"({"ts":10,"prompt_tokens_est":8,"completion_tokens_est":6,"total_tokens_est":14})"
      "\n";
  simdjson::dom::parser parser;

  simdjson::dom::element body = parser.parse(usageSummaryBody(log, queryOf(""))).value();
  CHECK(int64_t(body["prompt_tokens_est"]) == 8);
  CHECK(int64_t(body["total_tokens_est"]) == 14);
}

TEST_CASE("usage summary of an empty log counts nothing") {
  simdjson::dom::parser parser;
  simdjson::dom::element body = parser.parse(usageSummaryBody("", queryOf("group=hour"))).value();

  CHECK(int64_t(body["total_requests"]) == 0);
  CHECK(simdjson::dom::array(body["buckets"]).size() == 0);
}

TEST_CASE("usage raw limit is a floored integer clamped to [1, 10000], else 200") {
  CHECK(parseRawLimit("") == 200);
  CHECK(parseRawLimit("limit=") == 200);
  CHECK(parseRawLimit("limit=5") == 5);
  CHECK(parseRawLimit("limit=2.9") == 2);
  CHECK(parseRawLimit("limit=0.5") == 1);
  CHECK(parseRawLimit("limit=0") == 200);
  CHECK(parseRawLimit("limit=-3") == 200);
  CHECK(parseRawLimit("limit=abc") == 200);
  CHECK(parseRawLimit("limit=5abc") == 200);
  CHECK(parseRawLimit("limit=inf") == 200);
  CHECK(parseRawLimit("limit=nan") == 200);
  CHECK(parseRawLimit("limit=50000") == 10000);
  CHECK(parseRawLimit("limit=1e300") == 10000);
  CHECK(parseRawLimit("other=1&limit=3") == 3);
}

TEST_CASE("usage raw returns the last N parsed events oldest first, skipping bad lines") {
  std::string log = event(1, 1, 1) + "\n" + event(2, 1, 1) + "\n" + "{\"ts\":3,\"torn\n" +
                    "[1,2]\n" + event(4, 1, 1) + "\r\n";
  simdjson::dom::parser parser;

  simdjson::dom::element two = parser.parse(usageRawBody(log, 2)).value();
  CHECK(int64_t(two["count"]) == 2);
  simdjson::dom::array events = two["events"];
  REQUIRE(events.size() == 2);
  CHECK(int64_t(events.at(0)["ts"]) == 2);
  CHECK(int64_t(events.at(1)["ts"]) == 4);

  simdjson::dom::element all = parser.parse(usageRawBody(log, 200)).value();
  CHECK(int64_t(all["count"]) == 3);
  CHECK(int64_t(all["events"].at(0)["ts"]) == 1);
}

}  // namespace
}  // namespace codex
