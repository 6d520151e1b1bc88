// The rest of the behaviour contract, each part proven through nginx: keepalives, timeouts,
// CORS, models, usage accounting, the context guard, legacy completions, golden transcripts.
#include <doctest/doctest.h>
#include <signal.h>

#include <fstream>
#include <regex>

#include "gateway.hpp"
#include "json.hpp"

using namespace codex::test;

namespace {

const std::string kChat = R"({"model":"codex-5","messages":[{"role":"user","content":"hi"}]})";
const std::string kStream =
    R"({"model":"codex-5","stream":true,"messages":[{"role":"user","content":"hi"}]})";
const std::string kStreamUsage =
    R"({"model":"codex-5","stream":true,"stream_options":{"include_usage":true},)"
    R"("messages":[{"role":"user","content":"hi"}]})";

GatewayOptions withEnv(std::map<std::string, std::string> env) {
  return {2, std::move(env)};
}

std::string contentOf(const std::vector<std::string>& frames) {
  std::string text;
  for (const auto& frame : frames) {
    Json chunk(frame);
    text += chunk.has("/choices/0/delta/content") ? chunk.str("/choices/0/delta/content") : "";
    text += chunk.has("/choices/0/text") ? chunk.str("/choices/0/text") : "";
  }
  return text;
}

// Ids and timestamps change on every run; everything else must match byte for byte.
std::string normalised(const std::string& body) {
  std::string out =
      std::regex_replace(body, std::regex(R"("id":"(chatcmpl|cmpl)-[^"]*")"), R"("id":"$1-ID")");
  return std::regex_replace(out, std::regex(R"("created":[0-9]+)"), R"("created":0)");
}

void checkGolden(const std::string& name, const std::string& actual) {
  std::string path = std::string(getenv("CODEX_SOURCE_ROOT")) + "/tests/golden/" + name;
  if (getenv("UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path) << actual;
  }
  CAPTURE(path);
  CHECK(readFile(path) == actual);
}

}  // namespace

TEST_CASE("golden transcripts: non-stream minimal, non-stream truncation, stream with usage") {
  Gateway normal;
  checkGolden("nonstream-minimal.json",
              normalised(normal.post("/v1/chat/completions", kChat).body));
  checkGolden("stream-with-usage.sse",
              normalised(normal.post("/v1/chat/completions", kStreamUsage).body));

  Gateway truncated(withEnv({{"FAKE_CODEX_MODE", "no-complete"}}));
  checkGolden("nonstream-truncation.json",
              normalised(truncated.post("/v1/chat/completions", kChat).body));
}

TEST_CASE("keepalive comments flow before the first token and can be turned off three ways") {
  Gateway gw(withEnv({{"FAKE_CODEX_MODE", "hang"}, {"PROXY_SSE_KEEPALIVE_MS", "50"}}));
  std::regex keepalive(R"(: keepalive [0-9]+\n\n)");

  StreamClient plain(gw.url("/v1/chat/completions"), kStream, jsonHeaders(gw.apiKey()));
  REQUIRE(plain.waitFor([&](const Response& r) { return std::regex_search(r.body, keepalive); }));
  CHECK(contentOf(sseData(plain.snapshot().body)).empty());
  plain.abort();

  for (auto [path, header] : std::vector<std::pair<std::string, std::string>>{
           {"/v1/chat/completions", "User-Agent: obsidian/1.0 Electron"},
           {"/v1/chat/completions", "X-No-Keepalive: 1"},
           {"/v1/chat/completions?no_keepalive=1", "X-Other: 1"}}) {
    CAPTURE(header);
    Headers headers = jsonHeaders(gw.apiKey());
    headers.push_back(header);
    StreamClient quiet(gw.url(path), kStream, headers);
    REQUIRE(quiet.waitForHeaders());
    // Quiet for ten keepalive intervals: a deadline that passes is the expected outcome.
    CHECK_FALSE(quiet.waitForBody(": keepalive", std::chrono::milliseconds(500)));
    quiet.abort();
  }
}

TEST_CASE("timeouts answer with their envelopes and frames") {
  Gateway request_timer(withEnv({{"FAKE_CODEX_MODE", "hang"}, {"PROXY_TIMEOUT_MS", "300"}}));
  Response json = request_timer.post("/v1/chat/completions", kChat);
  CHECK(json.status == 504);
  CHECK(Json(json.body).str("/error/code") == "request_timeout");
  auto frames = sseData(request_timer.post("/v1/chat/completions", kStream).body);
  REQUIRE(frames.size() >= 2);
  CHECK(Json(frames[frames.size() - 2]).str("/error/code") == "request_timeout");
  CHECK(frames.back() == "[DONE]");

  Gateway idle(withEnv({{"FAKE_CODEX_MODE", "stream-hang"},
                        {"PROXY_PROTO_IDLE_MS", "300"},
                        {"PROXY_STREAM_IDLE_TIMEOUT_MS", "300"}}));
  Response idle_json = idle.post("/v1/chat/completions", kChat);
  CHECK(idle_json.status == 504);
  CHECK(Json(idle_json.body).str("/error/code") == "idle_timeout");
  // A silent chat stream ends normally: what arrived, finish_reason length, [DONE].
  auto idle_frames = sseData(idle.post("/v1/chat/completions", kStream).body);
  CHECK(contentOf(idle_frames) == "Hello (pre-hang)");
  REQUIRE(idle_frames.size() >= 2);
  CHECK(Json(idle_frames[idle_frames.size() - 2]).str("/choices/0/finish_reason") == "length");
  // A silent legacy stream ends with the idle_timeout frame.
  auto legacy = sseData(idle.post("/v1/completions", R"({"stream":true,"prompt":"hi"})").body);
  REQUIRE(legacy.size() >= 2);
  CHECK(Json(legacy[legacy.size() - 2]).str("/error/code") == "idle_timeout");
}

TEST_CASE("kill on disconnect ends a non-stream request's child when its client leaves") {
  Gateway gw(withEnv({{"FAKE_CODEX_MODE", "hang"}, {"PROXY_KILL_ON_DISCONNECT", "true"}}));

  StreamClient client(gw.url("/v1/chat/completions"), kChat, jsonHeaders(gw.apiKey()));
  std::set<pid_t> children;
  REQUIRE(eventually([&] { return !(children = Gateway::childrenOf(gw.workerPids())).empty(); }));
  client.abort();
  CHECK(eventually([&] {
    for (pid_t child : children) {
      if (processAlive(child)) {
        return false;
      }
    }
    return true;
  }));
}

TEST_CASE("CORS keeps one policy on every response") {
  Gateway gw;
  Headers with_origin = jsonHeaders(gw.apiKey());
  with_origin.push_back("Origin: https://app.example");

  for (const auto& r : {request("POST", gw.url("/v1/chat/completions"), kChat, with_origin),
                        request("POST", gw.url("/v1/chat/completions"), "{}", with_origin),
                        request("GET", gw.url("/v1/models"), "", with_origin)}) {
    CHECK(r.header("access-control-allow-origin") == "https://app.example");
    CHECK(r.header("access-control-allow-credentials") == "true");
    CHECK(r.header("vary").rfind("Origin", 0) == 0);
  }
  Response anonymous = gw.get("/v1/models");
  CHECK(anonymous.header("access-control-allow-origin") == "*");
  CHECK_FALSE(anonymous.hasHeader("access-control-allow-credentials"));

  Response preflight = request("OPTIONS", gw.url("/v1/models"), "",
                               {"Access-Control-Request-Headers: X-Custom, Authorization"});
  CHECK(preflight.header("access-control-allow-headers") == "X-Custom, Authorization");
  CHECK(preflight.header("access-control-max-age") == "600");

  Gateway off(withEnv({{"PROXY_ENABLE_CORS", "false"}}));
  Response bare = request("OPTIONS", off.url("/v1/models"), "", {"Origin: https://app.example"});
  CHECK(bare.status == 204);
  CHECK_FALSE(bare.hasHeader("access-control-allow-origin"));
}

TEST_CASE("models follow PROXY_ENV and PROXY_PROTECT_MODELS") {
  Gateway dev(withEnv({{"PROXY_ENV", "DEV"}, {"PROXY_PROTECT_MODELS", "true"}}));

  CHECK(request("GET", dev.url("/v1/models")).status == 401);
  Json list(dev.get("/v1/models").body);
  CHECK(list.str("/data/0/id") == "codev-5");
  // Both prefixes are accepted whatever the environment advertises.
  CHECK(dev.post("/v1/chat/completions", kChat).status == 200);
}

TEST_CASE("reasoning effort from the model suffix or the request reaches the child") {
  Gateway gw(withEnv({{"FAKE_CODEX_MODE", "dump"}}));
  auto argvOf = [&](const std::string& body) {
    REQUIRE(gw.post("/v1/chat/completions", body).status == 200);
    return readFile(gw.file("dump.json"));
  };

  std::string suffix = argvOf(R"({"model":"CODEX-5-HIGH","messages":[{"content":"x"}]})");
  CHECK(suffix.find(R"(model_reasoning_effort=\"high\")") != std::string::npos);
  std::string asked = argvOf(
      R"({"model":"codex-5-high","reasoning":{"effort":"low"},"messages":[{"content":"x"}]})");
  CHECK(asked.find(R"(model_reasoning_effort=\"low\")") != std::string::npos);
  std::string bogus = argvOf(
      R"({"model":"codex-5-minimal","reasoning_effort":"bogus","messages":[{"content":"x"}]})");
  CHECK(bogus.find(R"(model_reasoning_effort=\"minimal\")") != std::string::npos);
  std::string none = argvOf(R"({"model":"codex-5","messages":[{"content":"x"}]})");
  CHECK(none.find("model_reasoning_effort") == std::string::npos);
}

TEST_CASE("usage comes from the provider, the token count or the estimate, and says which") {
  struct Case {
    const char* mode;
    int64_t prompt, completion;
    const char* finish;
    const char* trigger;
  };
  for (const Case& c : {Case{"provider-usage", 9, 5, "stop", "provider"},
                        Case{"token-count-only", 11, 7, "length", "token_count"},
                        Case{"no-complete", 1, 9, "length", "close"}}) {
    CAPTURE(c.mode);
    Gateway gw(withEnv({{"FAKE_CODEX_MODE", c.mode}}));
    auto frames = sseData(gw.post("/v1/chat/completions", kStreamUsage).body);
    REQUIRE(frames.size() >= 3);
    Json usage(frames[frames.size() - 2]);
    CHECK(Json(frames[frames.size() - 3]).str("/choices/0/finish_reason") == c.finish);
    CHECK(usage.num("/usage/prompt_tokens") == c.prompt);
    CHECK(usage.num("/usage/completion_tokens") == c.completion);
    // app-server has one kind of usage report (a running token count), whatever the mode.
    std::string trigger = testBackend() == "app-server" && std::string(c.trigger) == "provider"
                              ? "token_count"
                              : c.trigger;
    CHECK(usage.str("/usage/emission_trigger") == trigger);
    CHECK(usage.isNull("/usage/time_to_first_token"));

    // The same numbers and finish reason without streaming.
    Json json(gw.post("/v1/chat/completions", kChat).body);
    CHECK(json.num("/usage/prompt_tokens") == c.prompt);
    CHECK(json.num("/usage/completion_tokens") == c.completion);
    CHECK(json.str("/choices/0/finish_reason") == c.finish);
  }
}

TEST_CASE("the context guard refuses prompts over PROXY_MAX_PROMPT_TOKENS") {
  Gateway gw(withEnv({{"PROXY_MAX_PROMPT_TOKENS", "10"}}));
  auto ask = [&](size_t chars) {
    return gw.post("/v1/chat/completions", R"({"messages":[{"role":"user","content":")" +
                                               std::string(chars, 'a') + R"("}]})");
  };

  CHECK(ask(40).status == 200);
  Response over = ask(44);
  CHECK(over.status == 403);
  CHECK(Json(over.body).str("/error/code") == "context_length_exceeded");
  CHECK(Json(over.body).str("/error/type") == "tokens_exceeded_error");
}

TEST_CASE("legacy completions answer in text_completion shapes") {
  Gateway gw;

  Json json(gw.post("/v1/completions", R"({"model":"codex-5","prompt":["say","hi"]})").body);
  CHECK(json.str("/object") == "text_completion");
  CHECK(json.str("/id").rfind("cmpl-", 0) == 0);
  CHECK(json.str("/choices/0/text") == "Hello from fake-codex.");
  CHECK(json.isNull("/choices/0/logprobs"));
  CHECK(json.str("/choices/0/finish_reason") == "stop");
  CHECK(json.num("/usage/total_tokens") == 14);

  auto frames = sseData(gw.post("/v1/completions", R"({"stream":true,"prompt":"hi"})").body);
  REQUIRE(frames.size() >= 3);
  CHECK(Json(frames[0]).str("/object") == "text_completion.chunk");
  CHECK(contentOf(frames) == "Hello from fake-codex.");
  CHECK(Json(frames[frames.size() - 2]).str("/choices/0/finish_reason") == "stop");
  CHECK(frames.back() == "[DONE]");
  CHECK(Json(gw.post("/v1/completions", "{}").body).str("/error/param") == "prompt");
}

TEST_CASE("one request id links nginx's access log, the worker's log and the child") {
  Gateway gw({2, {{"FAKE_CODEX_MODE", "dump"}}});

  Response r = gw.post("/v1/chat/completions", kChat);
  std::string id = r.header("x-request-id");
  REQUIRE(id.size() == 32);  // nginx's $request_id
  CHECK(Json(readFile(gw.file("dump.json"))).str("/request_id") == id);
  CHECK(eventually([&] {
    return readFile(gw.file("nginx-access.log")).find(R"("req_id":")" + id) != std::string::npos;
  }));
  CHECK(eventually([&] {
    std::string log = gw.workerLog();
    size_t line = log.find(R"("kind":"access","req_id":")" + id);
    return line != std::string::npos && log.find(R"("status":200)", line) != std::string::npos;
  }));
}

TEST_CASE("in development the child's input, output and events go to the proto log") {
  Gateway dev({2, {{"PROXY_ENV", "dev"}}});
  Gateway prod;

  Response r = dev.post("/v1/chat/completions", kChat);
  REQUIRE(r.status == 200);
  std::string log;
  REQUIRE(eventually([&] {
    log = readFile(dev.file("proto.ndjson"));
    return log.find(R"("kind":"event")") != std::string::npos;
  }));
  CHECK(log.find(R"("kind":"submission")") != std::string::npos);
  CHECK(log.find(R"("req_id":")" + r.header("x-request-id")) != std::string::npos);
  size_t start = 0;
  for (size_t end; (end = log.find('\n', start)) != std::string::npos; start = end + 1) {
    CHECK(Json(log.substr(start, end - start)).valid());
  }

  REQUIRE(prod.post("/v1/chat/completions", kChat).status == 200);
  CHECK(readFile(prod.file("proto.ndjson")).empty());
}
