// The global cap on open streams, through nginx to a pool of workers: exact admission,
// release on every end path, and no leak when a worker dies.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "gateway.hpp"
#include "json.hpp"

using namespace codex::test;

namespace {

const std::string kStream =
    R"({"model":"codex-5","stream":true,"messages":[{"role":"user","content":"hold"}]})";

GatewayOptions capped(int limit, int workers, std::map<std::string, std::string> extra = {}) {
  GatewayOptions options;
  options.workers = workers;
  options.env = {{"FAKE_CODEX_MODE", "long"}, {"PROXY_SSE_MAX_CONCURRENCY", std::to_string(limit)}};
  for (auto& [name, value] : extra) {
    options.env[name] = value;
  }
  return options;
}

std::unique_ptr<StreamClient> openStream(const Gateway& gw,
                                         const std::string& path = "/v1/chat/completions") {
  std::string body =
      path == "/v1/completions" ? R"({"model":"codex-5","stream":true,"prompt":"hold"})" : kStream;
  return std::make_unique<StreamClient>(gw.url(path), body, jsonHeaders(gw.apiKey()));
}

size_t countOf(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t pos = 0; (pos = text.find(needle, pos)) != std::string::npos; ++pos) {
    ++count;
  }
  return count;
}

}  // namespace

TEST_CASE("second stream over the limit gets 429 on another worker, five times in a row") {
  // One thread per worker: while the first stream holds worker A's only thread, the second
  // request can only be served by worker B, so every iteration crosses processes.
  Gateway gw(capped(1, 2, {{"PROXY_WORKER_THREADS", "1"}}));
  namespace fs = std::filesystem;

  for (int iteration = 0; iteration < 5; ++iteration) {
    CAPTURE(iteration);
    fs::remove(gw.file("ready"));
    auto first = openStream(gw);
    REQUIRE(first->waitForHeaders());
    REQUIRE(eventually([&] { return fs::exists(gw.file("ready")); }, std::chrono::seconds(5)));
    Response head = first->snapshot();
    CHECK(head.status == 200);
    CHECK(head.header("x-conc-before") == "0");
    CHECK(head.header("x-conc-after") == "1");
    CHECK(head.header("x-conc-limit") == "1");

    Response second = gw.post("/v1/chat/completions", kStream);
    CHECK(second.status == 429);
    CHECK(second.header("x-conc-before") == "1");
    CHECK(second.header("x-conc-after") == "1");
    CHECK(second.header("x-conc-limit") == "1");
    CHECK(second.header("retry-after") == "1");
    Json envelope(second.body);
    CHECK(envelope.str("/error/code") == "concurrency_exceeded");
    CHECK(envelope.str("/error/type") == "rate_limit_error");
    CHECK(envelope.str("/error/message") == "too many concurrent streams");
    CHECK(second.header("x-worker-pid") != head.header("x-worker-pid"));

    CHECK(gw.post("/__test/conc/release", "").status == 200);
    Response done = first->finish();
    CHECK(sseData(done.body).back() == "[DONE]");
    CHECK(gw.waitForOpenStreams(0));
  }
  std::string log = gw.workerLog();
  CHECK(countOf(log, R"("scope":"sse_guard")") == 15);
  for (const char* outcome : {"acquired", "rejected", "released"}) {
    CAPTURE(outcome);
    CHECK(countOf(log, std::string(R"("outcome":")") + outcome + "\"") == 5);
  }
}

TEST_CASE("test headers and endpoints are absent when test endpoints are off") {
  Gateway gw(capped(1, 2, {{"PROXY_TEST_ENDPOINTS", "false"}}));

  auto first = openStream(gw);
  REQUIRE(first->waitForBody("tick-0"));
  CHECK_FALSE(first->snapshot().hasHeader("x-conc-before"));
  Response second = gw.post("/v1/chat/completions", kStream);
  CHECK(second.status == 429);
  CHECK_FALSE(second.hasHeader("x-conc-before"));
  CHECK_FALSE(second.hasHeader("x-conc-after"));
  CHECK_FALSE(second.hasHeader("x-conc-limit"));
  CHECK(gw.get("/__test/conc").status == 404);
  CHECK(gw.post("/__test/conc/release", "").status == 404);
  CHECK(Json(gw.get("/__test/conc").body).str("/error/code") == "not_found");

  std::ofstream(gw.file("release")) << "go";
  CHECK(sseData(first->finish().body).back() == "[DONE]");
}

TEST_CASE("a burst of 64 streams against a limit of 8 admits exactly 8") {
  Gateway gw(capped(8, 4));
  std::vector<std::unique_ptr<StreamClient>> streams;

  for (int i = 0; i < 64; ++i) {
    streams.push_back(openStream(gw));
  }
  int admitted = 0, rejected = 0;
  for (auto& stream : streams) {
    REQUIRE(stream->waitForHeaders(std::chrono::seconds(20)));
    long status = stream->snapshot().status;
    admitted += status == 200;
    rejected += status == 429;
  }
  CHECK(admitted == 8);
  CHECK(rejected == 56);
  CHECK(gw.openStreams() == 8);
  // A rejected stream never spawned a child.
  CHECK(Gateway::childrenOf(gw.workerPids()).size() == 8);

  REQUIRE(gw.releaseAll());
  CHECK(gw.openStreams() == 0);
}

TEST_CASE("clients that drop their connections give their slots back") {
  for (bool kill_child : {false, true}) {
    CAPTURE(kill_child);
    Gateway gw(capped(3, 2, {{"PROXY_KILL_ON_DISCONNECT", kill_child ? "true" : "false"}}));
    std::vector<std::unique_ptr<StreamClient>> streams;

    for (int i = 0; i < 3; ++i) {
      streams.push_back(openStream(gw));
    }
    for (auto& stream : streams) {
      REQUIRE(stream->waitForBody("tick-0"));
    }
    REQUIRE(gw.openStreams() == 3);
    auto children = Gateway::childrenOf(gw.workerPids());
    CHECK(children.size() == 3);

    for (auto& stream : streams) {
      stream->abort();
    }
    CHECK(gw.waitForOpenStreams(0, std::chrono::seconds(2)));
    if (kill_child) {
      CHECK(eventually([&] { return processesGone(children); }, std::chrono::seconds(3)));
    } else {
      CHECK(gw.releaseAll());
    }
  }
}

TEST_CASE("a SIGKILLed worker's slots come back and its children die") {
  Gateway gw(capped(2, 2));
  std::vector<std::unique_ptr<StreamClient>> streams;

  for (int i = 0; i < 2; ++i) {
    streams.push_back(openStream(gw));
    REQUIRE(streams.back()->waitForBody("tick-0"));
  }
  REQUIRE(gw.openStreams() == 2);
  std::set<pid_t> holders;
  for (auto& stream : streams) {
    holders.insert(std::atoi(stream->snapshot().header("x-worker-pid").c_str()));
  }
  auto children = Gateway::childrenOf(holders);
  REQUIRE(children.size() == 2);
  auto before = gw.workerPids();

  for (pid_t worker : holders) {
    kill(worker, SIGKILL);
  }
  CHECK(gw.waitForOpenStreams(0, std::chrono::seconds(2)));
  CHECK(eventually([&] { return processesGone(children); }, std::chrono::seconds(2)));
  CHECK(eventually(
      [&] {
        auto now = gw.workerPids();
        for (pid_t dead : holders) {
          if (now.count(dead) > 0) {
            return false;
          }
        }
        return now.size() == before.size();
      },
      std::chrono::seconds(5)));

  std::vector<std::unique_ptr<StreamClient>> again;
  for (int i = 0; i < 2; ++i) {
    again.push_back(openStream(gw));
  }
  for (auto& stream : again) {
    REQUIRE(stream->waitForHeaders());
    CHECK(stream->snapshot().status == 200);
  }
  CHECK(gw.releaseAll());
}

TEST_CASE("legacy completion streams count against the same cap") {
  Gateway gw(capped(2, 2));

  auto chat = openStream(gw);
  auto legacy = openStream(gw, "/v1/completions");
  REQUIRE(chat->waitForBody("tick-0"));
  REQUIRE(legacy->waitForBody("tick-0"));
  CHECK(gw.openStreams() == 2);
  CHECK(Json(sseData(legacy->snapshot().body).front()).str("/object") == "text_completion.chunk");

  Response over = gw.post("/v1/completions", R"({"stream":true,"prompt":"more"})");
  CHECK(over.status == 429);
  CHECK(Json(over.body).str("/error/code") == "concurrency_exceeded");
  CHECK(gw.post("/v1/chat/completions", kStream).status == 429);
  CHECK(gw.releaseAll());
}
