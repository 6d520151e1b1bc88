// The real Codex CLI (tests/codex, pinned @openai/codex) as the gateway's child, with its
// provider pointed at the Responses API mock (tests/mock-responses/server.mjs): what a client
// sees through nginx. The mock's mode is picked by the prompt ("mock:slow", ...). These cases
// always use the app-server backend, so the suite's proto run (CODEX_TEST_BACKEND=proto) skips
// them instead of running them twice.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "gateway.hpp"
#include "json.hpp"

using namespace codex::test;

namespace {

namespace fs = std::filesystem;

const std::string kModel = "gpt-5.5";
const std::string kProviderKey = "mock-key-123";

fs::path sourceRoot() {
  const char* root = std::getenv("CODEX_SOURCE_ROOT");
  REQUIRE_MESSAGE(root != nullptr, "CODEX_SOURCE_ROOT is not set: run the tests through meson");
  return root;
}

// The npm package dir of the pinned Codex; the gateway resolves the native binary inside it.
fs::path codexPackage() {
  fs::path codex = sourceRoot() / "tests" / "codex";
  fs::path package = codex / "node_modules" / "@openai" / "codex";
  if (!fs::exists(package / "package.json")) {
    FAIL("tests/codex/node_modules is missing: run `npm ci` in " << codex.string()
                                                                 << " (scripts/test does this)");
  }
  return package;
}

// One mock process per test case, on a free loopback port. It exits when its stdin closes,
// so it cannot outlive the test binary.
class MockResponses {
 public:
  MockResponses() { start(); }
  ~MockResponses() { stop(); }
  MockResponses(const MockResponses&) = delete;
  MockResponses& operator=(const MockResponses&) = delete;

  std::string baseUrl() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

  // The mock's request log as it serves it: one JSON object per line.
  std::string logText() const {
    return request("GET", "http://127.0.0.1:" + std::to_string(port_) + "/__mock/log").body;
  }

  std::vector<std::string> log() const {
    std::vector<std::string> lines;
    std::istringstream in(logText());
    for (std::string line; std::getline(in, line);) {
      lines.push_back(line);
    }
    return lines;
  }

  // The logged POST /v1/responses requests, in order.
  std::vector<std::string> requests() const {
    std::vector<std::string> found;
    for (const auto& line : log()) {
      Json entry(line);
      if (entry.str("/path") == "/v1/responses" && entry.str("/method") == "POST") {
        found.push_back(line);
      }
    }
    return found;
  }

  // True once the mock logged that Codex closed its upstream request in `mode` early.
  bool sawClientClose(const std::string& mode) const {
    for (const auto& line : log()) {
      Json entry(line);
      if (entry.str("/mode") == mode && entry.str("/event") == "client closed") {
        return true;
      }
    }
    return false;
  }

 private:
  void start() {
    fs::path script = sourceRoot() / "tests" / "mock-responses" / "server.mjs";
    fs::create_directories(sourceRoot() / "build");
    std::string log_path = (sourceRoot() / "build" / "mock-responses.log").string();
    int in[2], out[2];
    REQUIRE(pipe2(in, O_CLOEXEC) == 0);
    REQUIRE(pipe2(out, O_CLOEXEC) == 0);

    pid_ = fork();
    if (pid_ == 0) {
      int log = open(log_path.c_str(), O_WRONLY | O_CREAT | (first_ ? O_TRUNC : O_APPEND), 0644);
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(log, 2);
      execlp("node", "node", script.c_str(), "0", "--exit-on-stdin-eof", nullptr);
      _exit(127);
    }
    first_ = false;
    close(in[0]);
    close(out[1]);
    stdin_ = in[1];
    port_ = readPort(out[0]);
    close(out[0]);
    if (port_ <= 0) {
      stop();
      FAIL("the Responses mock did not start (is node on PATH?); see " << log_path);
    }
  }

  // Reads the mock's `listening <port>` line; 0 if it does not come within 10 s.
  static int readPort(int fd) {
    std::string text;
    char buffer[256];

    while (text.find('\n') == std::string::npos) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 10000) <= 0) {
        return 0;
      }
      ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n <= 0) {
        return 0;
      }
      text.append(buffer, static_cast<size_t>(n));
    }
    return text.starts_with("listening ") ? std::atoi(text.c_str() + 10) : 0;
  }

  void stop() {
    if (stdin_ >= 0) {
      close(stdin_);
      stdin_ = -1;
    }
    if (pid_ <= 0) {
      return;
    }
    kill(pid_, SIGTERM);
    if (!eventually([this] { return waitpid(pid_, nullptr, WNOHANG) == pid_; })) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }

  // The stderr log file is truncated by the first mock of a test run, then appended to.
  static inline bool first_ = true;
  pid_t pid_ = -1;
  int stdin_ = -1;
  int port_ = 0;
};

// A gateway whose child is the real Codex, in app-server mode, talking to `mock`.
GatewayOptions realCodex(const MockResponses& mock, std::map<std::string, std::string> extra = {}) {
  fs::path home = sourceRoot() / "build" / "codex-home-test";
  fs::create_directories(home);
  std::map<std::string, std::string> env = {
      {"CODEX_BACKEND", "app-server"},
      {"CODEX_BIN", codexPackage().string()},
      {"CODEX_PROVIDER_BASE_URL", mock.baseUrl()},
      {"CODEX_PROVIDER_API_KEY", kProviderKey},
      {"CODEX_MODEL", kModel},
      {"CODEX_HOME", home.string()},
      {"PROXY_SSE_KEEPALIVE_MS", "0"},
  };
  for (auto& [name, value] : extra) {
    env[name] = value;
  }
  return {2, env};
}

std::string chat(const std::string& prompt, bool stream) {
  std::string options = stream ? R"("stream":true,"stream_options":{"include_usage":true},)" : "";
  return R"({"model":")" + kModel + R"(",)" + options +
         R"("messages":[{"role":"user","content":")" + prompt + R"("}]})";
}

// The content of each chunk that carries some, in order.
std::vector<std::string> contentChunks(const std::vector<std::string>& frames) {
  std::vector<std::string> chunks;
  for (const auto& frame : frames) {
    Json chunk(frame);
    if (chunk.has("/choices/0/delta/content") && !chunk.str("/choices/0/delta/content").empty()) {
      chunks.push_back(chunk.str("/choices/0/delta/content"));
    }
  }
  return chunks;
}

bool noCodexLeft(const Gateway& gw) {
  return eventually([&] { return Gateway::childrenOf(gw.workerPids()).empty(); },
                    std::chrono::seconds(3));
}

bool protoRun() {
  const char* backend = std::getenv("CODEX_TEST_BACKEND");
  return backend != nullptr && std::string(backend) == "proto";
}

}  // namespace

TEST_SUITE_BEGIN("real codex" * doctest::skip(protoRun()));

TEST_CASE("real codex: a non-stream answer is the mock's text, with the mock's usage") {
  MockResponses mock;
  Gateway gw(realCodex(mock));

  Response r = gw.post("/v1/chat/completions", chat("Say hello", false));
  Json body(r.body);
  INFO("response: " << r.body << "\nworker log:\n"
                    << gw.workerLog() << "\nmock log:\n"
                    << mock.logText());
  CHECK(r.status == 200);
  CHECK(body.str("/object") == "chat.completion");
  CHECK(body.str("/choices/0/message/content") == "Hello from mock.");
  CHECK(body.str("/choices/0/finish_reason") == "stop");
  CHECK(body.num("/usage/prompt_tokens") == 12);
  CHECK(body.num("/usage/completion_tokens") == 3);
  CHECK(body.num("/usage/total_tokens") == 15);

  // Codex reached the mock once, with our model and our key (as a bearer token).
  auto requests = mock.requests();
  REQUIRE(requests.size() == 1);
  Json upstream(requests[0]);
  CHECK(upstream.str("/body/model") == kModel);
  CHECK(upstream.str("/body/last_user_text").find("Say hello") != std::string::npos);
  CHECK(upstream.str("/headers/authorization") ==
        "Bearer <" + std::to_string(kProviderKey.size()) + " chars>");
  CHECK(noCodexLeft(gw));
}

TEST_CASE("real codex: a stream carries each upstream delta as its own chunk, then usage") {
  MockResponses mock;
  Gateway gw(realCodex(mock));

  Response r = gw.post("/v1/chat/completions", chat("Say hello", true));
  INFO("response: " << r.body << "\nworker log:\n"
                    << gw.workerLog() << "\nmock log:\n"
                    << mock.logText());
  CHECK(r.status == 200);
  CHECK(r.header("content-type") == "text/event-stream");
  auto frames = sseData(r.body);
  REQUIRE(frames.size() >= 3);
  CHECK(contentChunks(frames) == std::vector<std::string>{"Hello", " from", " mock."});
  CHECK(frames.back() == "[DONE]");
  Json usage(frames[frames.size() - 2]);
  CHECK(usage.size("/choices") == 0);
  CHECK(usage.num("/usage/prompt_tokens") == 12);
  CHECK(usage.num("/usage/completion_tokens") == 3);
  CHECK(usage.num("/usage/total_tokens") == 15);
  bool stopped = false;
  for (const auto& frame : frames) {
    stopped = stopped || Json(frame).str("/choices/0/finish_reason") == "stop";
  }
  CHECK(stopped);
  CHECK(noCodexLeft(gw));
}

TEST_CASE("real codex: an upstream 500 is an error envelope, or an error frame then DONE") {
  MockResponses mock;
  Gateway gw(realCodex(mock));

  Response json = gw.post("/v1/chat/completions", chat("mock:error500", false));
  INFO("non-stream: " << json.body << "\nworker log:\n"
                      << gw.workerLog() << "\nmock log:\n"
                      << mock.logText());
  CHECK(json.status >= 500);
  CHECK(json.status <= 599);
  CHECK(json.header("content-type") == "application/json; charset=utf-8");
  Json envelope(json.body);
  CHECK(envelope.has("/error/message"));
  CHECK(envelope.has("/error/type"));
  CHECK(envelope.has("/error/code"));

  Response stream = gw.post("/v1/chat/completions", chat("mock:error500", true));
  INFO("stream: " << stream.body);
  CHECK(stream.status == 200);
  auto frames = sseData(stream.body);
  REQUIRE(frames.size() >= 2);
  CHECK(contentChunks(frames).empty());
  CHECK(Json(frames[frames.size() - 2]).has("/error/message"));
  CHECK(frames.back() == "[DONE]");
  CHECK(noCodexLeft(gw));
}

TEST_CASE("real codex: a client that leaves mid-stream takes its Codex process with it") {
  MockResponses mock;
  Gateway gw(realCodex(mock, {{"PROXY_KILL_ON_DISCONNECT", "true"}}));

  // The slow mode streams for about 5 s; the first delta comes after 200 ms.
  StreamClient client(gw.url("/v1/chat/completions"), chat("mock:slow", true),
                      jsonHeaders(gw.apiKey()));
  INFO("worker log:\n" << gw.workerLog() << "\nmock log:\n" << mock.logText());
  REQUIRE(client.waitForBody("Hello", std::chrono::seconds(15)));
  std::set<pid_t> codex = Gateway::childrenOf(gw.workerPids());
  REQUIRE_FALSE(codex.empty());
  client.abort();

  // Well before the mock would have finished on its own.
  CHECK(noCodexLeft(gw));
  for (pid_t pid : codex) {
    CHECK_FALSE(processAlive(pid));
  }
  CHECK(eventually([&] { return mock.sawClientClose("slow"); }));
}

TEST_CASE("real codex: an upstream that never answers is cut by our deadline") {
  MockResponses mock;
  Gateway gw(realCodex(mock, {{"PROXY_TIMEOUT_MS", "3000"}}));

  auto started = std::chrono::steady_clock::now();
  Response json = gw.post("/v1/chat/completions", chat("mock:hang", false));
  auto took = std::chrono::steady_clock::now() - started;
  INFO("non-stream: " << json.body << "\nworker log:\n"
                      << gw.workerLog() << "\nmock log:\n"
                      << mock.logText());
  CHECK(json.status == 504);
  CHECK(Json(json.body).str("/error/code") == "request_timeout");
  CHECK(took >= std::chrono::milliseconds(2900));
  CHECK(took < std::chrono::seconds(10));
  CHECK(noCodexLeft(gw));
  CHECK(eventually([&] { return mock.sawClientClose("hang"); }));

  auto frames = sseData(gw.post("/v1/chat/completions", chat("mock:hang", true)).body);
  REQUIRE(frames.size() >= 2);
  CHECK(Json(frames[frames.size() - 2]).str("/error/code") == "request_timeout");
  CHECK(frames.back() == "[DONE]");
  CHECK(noCodexLeft(gw));
}

TEST_SUITE_END();
