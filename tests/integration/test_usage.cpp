// The usage log and GET /v1/usage, /v1/usage/raw through nginx, as an operator's client sees them.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "gateway.hpp"
#include "json.hpp"

using namespace codex::test;

namespace {

const std::string kChat = R"({"model":"codex-5","messages":[{"role":"user","content":"hi"}]})";
const std::string kStreamWithUsage =
    R"({"model":"codex-5","stream":true,"stream_options":{"include_usage":true},)"
    R"("messages":[{"role":"user","content":"hi"}]})";
const std::string kStream =
    R"({"model":"codex-5","stream":true,"messages":[{"role":"user","content":"hi"}]})";

// A usage log of its own for each gateway, in a directory the workers must create.
class UsageLogDir {
 public:
  UsageLogDir() {
    char pattern[] = "/tmp/codex-usage-it-XXXXXX";
    dir_ = mkdtemp(pattern);
  }
  ~UsageLogDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path() const { return dir_ + "/logs/usage.ndjson"; }

 private:
  std::string dir_;
};

// The log is written once the child has gone, which may be just after the client has its
// answer: poll /v1/usage until it counts `n` requests.
bool waitForRequests(const Gateway& gw, int64_t n) {
  return eventually([&] { return Json(gw.get("/v1/usage").body).num("/total_requests") == n; });
}

void checkEnvelope(const Response& r, long status, const std::string& code) {
  Json body(r.body);

  CHECK(r.status == status);
  CHECK(r.header("content-type") == "application/json; charset=utf-8");
  REQUIRE(body.valid());
  CHECK(body.str("/error/code") == code);
  CHECK(body.has("/error/message"));
}

}  // namespace

TEST_CASE("usage endpoints count a non-stream and a stream request with their actual tokens") {
  UsageLogDir log;
  Gateway gw({2, {{"TOKEN_LOG_PATH", log.path()}}});

  Response plain = gw.post("/v1/chat/completions", kChat);
  REQUIRE(plain.status == 200);
  REQUIRE(waitForRequests(gw, 1));
  Response stream = gw.post("/v1/chat/completions", kStreamWithUsage);
  REQUIRE(stream.status == 200);
  REQUIRE(waitForRequests(gw, 2));

  Json usage(gw.get("/v1/usage").body);
  CHECK(usage.num("/total_requests") == 2);
  CHECK(usage.num("/prompt_tokens_est") == 16);  // 8 + 8 from token_count events
  CHECK(usage.num("/completion_tokens_est") == 12);
  CHECK(usage.num("/total_tokens_est") == 28);
  CHECK_FALSE(usage.has("/group"));

  Response raw = gw.get("/v1/usage/raw?limit=1");
  Json last(raw.body);
  CHECK(raw.status == 200);
  CHECK(last.num("/count") == 1);
  CHECK(last.str("/events/0/req_id") == stream.header("x-request-id"));
  CHECK(last.str("/events/0/route") == "/v1/chat/completions");
  CHECK(last.str("/events/0/method") == "POST");
  CHECK(last.str("/events/0/requested_model") == "codex-5");
  CHECK(last.boolean("/events/0/stream") == true);
  CHECK(last.num("/events/0/status") == 200);
  CHECK(last.num("/events/0/total_tokens") == 14);
  CHECK(last.str("/events/0/counts_source") == "event");
  CHECK(last.str("/events/0/emission_trigger") == "token_count");
  CHECK(last.boolean("/events/0/usage_included") == true);
  CHECK(last.boolean("/events/0/provider_supplied") == false);

  Json both(gw.get("/v1/usage/raw?limit=2.9").body);
  CHECK(both.num("/count") == 2);
  CHECK(both.str("/events/0/req_id") == plain.header("x-request-id"));
  CHECK(both.boolean("/events/0/stream") == false);
}

TEST_CASE("usage endpoints group by UTC hour and reject an unknown group") {
  UsageLogDir log;
  Gateway gw({2, {{"TOKEN_LOG_PATH", log.path()}}});

  REQUIRE(gw.post("/v1/chat/completions", kChat).status == 200);
  REQUIRE(waitForRequests(gw, 1));

  Json hourly(gw.get("/v1/usage?group=hour&start=2020-01-01T00%3A00%3A00Z").body);
  CHECK(hourly.str("/group") == "hour");
  REQUIRE(hourly.size("/buckets") == 1);
  CHECK(hourly.num("/buckets/0/requests") == 1);
  std::string bucket = hourly.str("/buckets/0/ts");
  CHECK(bucket.size() == 24);
  CHECK(bucket.substr(13) == ":00:00.000Z");

  Json none(gw.get("/v1/usage?end=2020-01-01").body);
  CHECK(none.num("/total_requests") == 0);

  Response week = gw.get("/v1/usage?group=week");
  checkEnvelope(week, 400, "invalid_request_error");
  CHECK(Json(week.body).str("/error/param") == "group");
}

TEST_CASE("usage endpoints require the bearer key") {
  UsageLogDir log;
  Gateway gw({2, {{"TOKEN_LOG_PATH", log.path()}}});

  for (const char* path : {"/v1/usage", "/v1/usage/raw"}) {
    Response none = request("GET", gw.url(path));
    checkEnvelope(none, 401, "invalid_api_key");
    CHECK(none.header("www-authenticate") == "Bearer realm=api");
    Response wrong = request("GET", gw.url(path), "", {"Authorization: Bearer nope"});
    CHECK(wrong.status == 401);
  }
  CHECK(request("POST", gw.url("/v1/usage"), "", {"Authorization: Bearer " + gw.apiKey()}).status ==
        404);
}

TEST_CASE("usage log records a child crash after spawn with its real status") {
  UsageLogDir log;
  Gateway gw({2, {{"TOKEN_LOG_PATH", log.path()}, {"FAKE_CODEX_MODE", "crash"}}});

  Response plain = gw.post("/v1/chat/completions", kChat);
  CHECK(plain.status == 502);
  REQUIRE(waitForRequests(gw, 1));
  Json first(gw.get("/v1/usage/raw?limit=1").body);
  CHECK(first.str("/events/0/req_id") == plain.header("x-request-id"));
  CHECK(first.num("/events/0/status") == 502);
  CHECK(first.str("/events/0/end_reason") == "child_failed");
  CHECK(first.str("/events/0/counts_source") == "estimate");

  // A stream has sent 200 before the crash; its error frame's status is what gets logged.
  Response stream = gw.post("/v1/chat/completions", kStream);
  CHECK(stream.status == 200);
  CHECK(stream.body.find("backend_error") != std::string::npos);
  REQUIRE(waitForRequests(gw, 2));
  Json second(gw.get("/v1/usage/raw?limit=1").body);
  CHECK(second.str("/events/0/req_id") == stream.header("x-request-id"));
  CHECK(second.num("/events/0/status") == 502);
  CHECK(second.boolean("/events/0/stream") == true);
}

TEST_CASE("usage log records a legacy stream that ends without task_complete") {
  UsageLogDir log;
  Gateway gw({2, {{"TOKEN_LOG_PATH", log.path()}, {"FAKE_CODEX_MODE", "no-complete"}}});

  Response r = gw.post("/v1/completions", R"({"model":"codex-5","stream":true,"prompt":"hi"})");
  CHECK(r.status == 200);
  REQUIRE(waitForRequests(gw, 1));
  Json raw(gw.get("/v1/usage/raw").body);
  CHECK(raw.str("/events/0/req_id") == r.header("x-request-id"));
  CHECK(raw.str("/events/0/route") == "/v1/completions");
  CHECK(raw.num("/events/0/status") == 200);
  CHECK(raw.str("/events/0/emission_trigger") == "close");
}
