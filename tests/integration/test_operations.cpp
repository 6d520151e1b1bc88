// Running the pool unattended: metrics that match what happened, a SIGHUP reload that rolls the
// workers without cutting a stream or loosening the cap, and replacement of dead workers.
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "gateway.hpp"
#include "json.hpp"

using namespace codex::test;

namespace {

const std::string kStream =
    R"({"model":"codex-5","stream":true,"messages":[{"role":"user","content":"hold"}]})";
const std::string kChat = R"({"model":"codex-5","messages":[{"role":"user","content":"hi"}]})";

Headers bearer(const std::string& key) {
  return {"Authorization: Bearer " + key};
}

// The value of one sample line (`name{labels} value`) of a scrape; -1 when absent.
double sample(const std::string& text, const std::string& series) {
  std::string needle = "\n" + series + " ";
  size_t at = text.find(needle);
  if (at == std::string::npos) {
    return -1;
  }
  return std::stod(text.substr(at + needle.size()));
}

size_t countOf(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t pos = 0; (pos = text.find(needle, pos)) != std::string::npos; ++pos) {
    ++count;
  }
  return count;
}

// Log lines of one process with one message.
bool logged(const std::string& log, pid_t pid, const std::string& message) {
  std::string pid_field = "\"pid\":" + std::to_string(pid) + ",";
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(pid_field) != std::string::npos &&
        line.find("\"msg\":\"" + message + "\"") != std::string::npos) {
      return true;
    }
  }
  return false;
}

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

// A PROXY_CONFIG_FILE outside the gateway's runtime directory, which exists only once it runs.
class ConfigFile {
 public:
  explicit ConfigFile(const std::string& text) {
    static int serial = 0;
    path_ = std::filesystem::temp_directory_path() / ("codex-gateway-" + std::to_string(getpid()) +
                                                      "-" + std::to_string(++serial) + ".toml");
    writeFile(path_, text);
  }
  ~ConfigFile() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

TEST_CASE("/metrics is off by default and, when on, needs the key unless loopback is allowed") {
  Gateway off;
  CHECK(off.get("/metrics").status == 404);

  Gateway gw({1, {{"PROXY_ENABLE_METRICS", "true"}, {"PROXY_METRICS_LOOPBACK", "false"}}});
  Response anonymous = request("GET", gw.url("/metrics"));
  CHECK(anonymous.status == 401);
  CHECK(Json(anonymous.body).str("/error/code") == "invalid_api_key");
  Response keyed = gw.get("/metrics");
  CHECK(keyed.status == 200);
  CHECK(keyed.header("content-type").starts_with("text/plain; version=0.0.4"));
  CHECK(sample(keyed.body, "codex_gateway_workers") == 1);

  // nginx reaches us from 127.0.0.1, so a scraper on the same host needs no key by default.
  Gateway local({1, {{"PROXY_ENABLE_METRICS", "true"}}});
  CHECK(request("GET", local.url("/metrics")).status == 200);
}

TEST_CASE("metrics count a scripted sequence of requests exactly, across workers") {
  Gateway gw({2,
              {{"PROXY_ENABLE_METRICS", "true"},
               {"PROXY_SSE_MAX_CONCURRENCY", "1"},
               {"PROXY_TEST_ENDPOINTS", "true"},
               {"FAKE_CODEX_MODE", "long"}}});

  CHECK(gw.get("/healthz").status == 200);
  CHECK(gw.get("/healthz").status == 200);
  CHECK(gw.get("/v1/models").status == 200);
  CHECK(gw.post("/v1/chat/completions", "{not json").status == 400);
  auto held = std::make_unique<StreamClient>(gw.url("/v1/chat/completions"), kStream,
                                             jsonHeaders(gw.apiKey()));
  REQUIRE(held->waitForBody("tick-0"));
  CHECK(gw.post("/v1/chat/completions", kStream).status == 429);
  CHECK(gw.post("/v1/chat/completions", kStream).status == 429);
  std::string during = gw.get("/metrics").body;
  REQUIRE(gw.releaseAll());
  Response ended = held->finish();
  CHECK(sseData(ended.body).back() == "[DONE]");
  REQUIRE(gw.waitForOpenStreams(0));

  // The scrape taken while the stream was open counts that stream as open.
  CHECK(sample(during, "codex_gateway_open_streams") == 1);
  // The release check, /__test/conc and the first scrape were requests too.
  Response after = gw.get("/metrics");
  REQUIRE(after.status == 200);
  const std::string& text = after.body;
  INFO(text);
  CHECK(sample(text, "codex_gateway_open_streams") == 0);
  CHECK(sample(text, "codex_gateway_stream_limit") == 1);
  // Two, and the harness's own probe while it waited for the pool to start.
  CHECK(sample(text, R"(codex_gateway_requests_total{route="/healthz",status="200"})") == 3);
  CHECK(sample(text, R"(codex_gateway_requests_total{route="/v1/models",status="200"})") == 1);
  CHECK(sample(text,
               R"(codex_gateway_requests_total{route="/v1/chat/completions",status="400"})") == 1);
  CHECK(sample(text,
               R"(codex_gateway_requests_total{route="/v1/chat/completions",status="429"})") == 2);
  CHECK(sample(text,
               R"(codex_gateway_requests_total{route="/v1/chat/completions",status="200"})") == 1);
  CHECK(sample(text, R"(codex_gateway_requests_total{route="/metrics",status="200"})") == 1);
  CHECK(sample(text, R"(codex_gateway_stream_admissions_total{result="admitted"})") == 1);
  CHECK(sample(text, R"(codex_gateway_stream_admissions_total{result="rejected"})") == 2);
  CHECK(sample(text, R"(codex_gateway_stream_ends_total{reason="done"})") == 1);
  CHECK(sample(text, R"(codex_gateway_stream_ends_total{reason="client_gone"})") == 0);
  CHECK(sample(text, "codex_gateway_child_first_byte_seconds_count") == 1);
  CHECK(sample(text, "codex_gateway_rate_limited_total") == 0);
  CHECK(sample(text, "codex_gateway_workers") == 2);
  CHECK(sample(text, "codex_gateway_worker_restarts_total") == 0);
}

TEST_CASE("rate-limited requests are counted once each") {
  Gateway gw({1,
              {{"PROXY_ENABLE_METRICS", "true"},
               {"PROXY_RATE_LIMIT_ENABLED", "true"},
               {"PROXY_RATE_LIMIT_MAX", "1"}}});
  CHECK(gw.post("/v1/chat/completions", kChat).status == 200);
  CHECK(gw.post("/v1/chat/completions", kChat).status == 429);
  CHECK(gw.post("/v1/chat/completions", kChat).status == 429);
  std::string text = gw.get("/metrics").body;
  CHECK(sample(text, "codex_gateway_rate_limited_total") == 2);
  CHECK(sample(text,
               R"(codex_gateway_requests_total{route="/v1/chat/completions",status="429"})") == 2);
}

TEST_CASE("SIGHUP rolls the workers onto the new file without cutting a stream or the cap") {
  ConfigFile file("PROXY_SSE_MAX_CONCURRENCY = 2\n");
  const std::string& config = file.path();
  Gateway gw({2,
              {{"PROXY_CONFIG_FILE", config},
               {"PROXY_ENABLE_METRICS", "true"},
               {"PROXY_TEST_ENDPOINTS", "true"},
               {"FAKE_CODEX_MODE", "long"}}});
  std::set<pid_t> old_workers = gw.workerPids();
  REQUIRE(old_workers.size() == 2);

  std::vector<std::unique_ptr<StreamClient>> streams;
  for (int i = 0; i < 2; ++i) {
    streams.push_back(std::make_unique<StreamClient>(gw.url("/v1/chat/completions"), kStream,
                                                     jsonHeaders(gw.apiKey())));
    REQUIRE(streams.back()->waitForBody("tick-0"));
  }
  CHECK(gw.post("/v1/chat/completions", kStream).status == 429);

  // The new configuration rotates the bearer key and keeps the cap.
  const std::string new_key = "rolled-key-456";
  writeFile(config, "PROXY_SSE_MAX_CONCURRENCY = 2\nPROXY_API_KEY = \"" + new_key + "\"\n");
  REQUIRE(kill(gw.supervisorPid(), SIGHUP) == 0);
  REQUIRE(eventually(
      [&] {
        std::string log = gw.workerLog();
        for (pid_t pid : old_workers) {
          if (!logged(log, pid, "worker stopped accepting")) {
            return false;
          }
        }
        return countOf(log, "\"msg\":\"worker ready\"") == 4;
      },
      std::chrono::seconds(10)));

  // Only new workers answer now: the old key is refused and the new one admitted to the cap,
  // which the two streams on the retiring workers still fill.
  CHECK(request("POST", gw.url("/v1/chat/completions"), kStream, jsonHeaders(gw.apiKey())).status ==
        401);
  Response over = request("POST", gw.url("/v1/chat/completions"), kStream, jsonHeaders(new_key));
  CHECK(over.status == 429);
  CHECK(old_workers.count(std::stoi(over.header("x-worker-pid"))) == 0);
  // A retiring worker stays while it has a stream (one with none has already left).
  for (auto& stream : streams) {
    pid_t serving = std::stoi(stream->snapshot().header("x-worker-pid"));
    CHECK(old_workers.count(serving) == 1);
    CHECK(processAlive(serving));
  }
  std::string text = request("GET", gw.url("/metrics"), "", bearer(new_key)).body;
  CHECK(sample(text, R"(codex_gateway_config_reloads_total{result="ok"})") == 1);
  CHECK(sample(text, "codex_gateway_workers") == 2);
  CHECK(sample(text, "codex_gateway_open_streams") == 2);

  // The old streams run on to their own end.
  size_t before = streams[0]->snapshot().body.size();
  REQUIRE(streams[0]->waitFor([&](const Response& r) { return r.body.size() > before; }));
  std::ofstream(gw.file("release")) << "release";
  REQUIRE(eventually([&] { return !std::filesystem::exists(gw.file("release")); },
                     std::chrono::seconds(5)));
  std::ofstream(gw.file("release")) << "release";
  for (auto& stream : streams) {
    Response done = stream->finish();
    CHECK(done.status == 200);
    CHECK(done.body.find("server_shutdown") == std::string::npos);
    CHECK(sseData(done.body).back() == "[DONE]");
  }
  // Their workers leave once idle, and are not replaced.
  CHECK(eventually([&] { return processesGone(old_workers); }, std::chrono::seconds(5)));
  CHECK(gw.workerPids().size() == 2);
  auto fresh =
      std::make_unique<StreamClient>(gw.url("/v1/chat/completions"), kStream, jsonHeaders(new_key));
  CHECK(fresh->waitForBody("tick-0"));
}

TEST_CASE("a reload whose file does not parse keeps the running workers") {
  ConfigFile file("PROXY_SSE_MAX_CONCURRENCY = 2\n");
  const std::string& config = file.path();
  Gateway gw({2, {{"PROXY_CONFIG_FILE", config}, {"PROXY_ENABLE_METRICS", "true"}}});
  std::set<pid_t> workers = gw.workerPids();

  writeFile(config, "PROXY_SSE_MAX_CONCURRENCY = \"many\"\n");
  REQUIRE(kill(gw.supervisorPid(), SIGHUP) == 0);
  REQUIRE(eventually([&] { return gw.workerLog().find("reload refused") != std::string::npos; }));
  CHECK(gw.workerLog().find("PROXY_SSE_MAX_CONCURRENCY: not a whole number") != std::string::npos);
  CHECK(gw.workerPids() == workers);
  std::string text = gw.get("/metrics").body;
  CHECK(sample(text, R"(codex_gateway_config_reloads_total{result="failed"})") == 1);
  CHECK(sample(text, R"(codex_gateway_config_reloads_total{result="ok"})") == 0);
}

TEST_CASE("a killed worker is replaced within two seconds") {
  Gateway gw({2, {{"PROXY_ENABLE_METRICS", "true"}}});
  std::set<pid_t> before = gw.workerPids();
  REQUIRE(before.size() == 2);
  pid_t victim = *before.begin();

  REQUIRE(kill(victim, SIGKILL) == 0);
  CHECK(eventually(
      [&] {
        auto now = gw.workerPids();
        return now.size() == 2 && now.count(victim) == 0;
      },
      std::chrono::seconds(2)));
  CHECK(eventually([&] { return gw.get("/healthz").status == 200; }));
  std::string text = gw.get("/metrics").body;
  CHECK(sample(text, "codex_gateway_worker_restarts_total") == 1);
  CHECK(sample(text, "codex_gateway_workers") == 2);
}

TEST_CASE("workers that keep dying young are replaced with doubling back-off and reported") {
  Gateway gw({1, {{"PROXY_ENABLE_METRICS", "true"}}});

  // Each replacement is killed as soon as it appears: five young deaths in a row.
  for (int death = 1; death <= 5; ++death) {
    CAPTURE(death);
    std::set<pid_t> workers;
    REQUIRE(eventually(
        [&] {
          workers = gw.workerPids();
          return workers.size() == 1;
        },
        std::chrono::seconds(5)));
    REQUIRE(kill(*workers.begin(), SIGKILL) == 0);
    REQUIRE(eventually([&] { return processesGone(workers); }));
  }
  // The fifth replacement waits 0.1 s doubled four times.
  REQUIRE(eventually(
      [&] { return gw.workerLog().find("workers are crash-looping") != std::string::npos; }));
  REQUIRE(eventually([&] { return gw.get("/healthz").status == 200; }, std::chrono::seconds(5)));
  std::string text = gw.get("/metrics").body;
  INFO(text);
  CHECK(sample(text, "codex_gateway_worker_young_deaths") == 5);
  CHECK(sample(text, "codex_gateway_worker_respawn_delay_seconds") == doctest::Approx(1.6));
  CHECK(sample(text, "codex_gateway_worker_restarts_total") == 5);
}
