// What only the app-server backend does: history, upstream errors, retries that would replay
// text, and the provider settings handed to Codex.
#include <doctest/doctest.h>
#include <unistd.h>

#include "gateway.hpp"
#include "json.hpp"

using namespace codex::test;

namespace {

const std::string kChat = R"({"model":"codex-5","messages":[{"role":"user","content":"hi"}]})";
const std::string kStream =
    R"({"model":"codex-5","stream":true,"messages":[{"role":"user","content":"hi"}]})";

GatewayOptions appServer(std::map<std::string, std::string> env) {
  env["CODEX_BACKEND"] = "app-server";
  return {2, env};
}

std::string contentOf(const std::vector<std::string>& frames) {
  std::string text;
  for (const auto& frame : frames) {
    Json chunk(frame);
    text += chunk.has("/choices/0/delta/content") ? chunk.str("/choices/0/delta/content") : "";
  }
  return text;
}

}  // namespace

TEST_CASE("app-server: earlier turns become injected history, system messages instructions") {
  char toml[] = "/tmp/codex-config-XXXXXX";
  int fd = mkstemp(toml);
  std::string settings = "model_verbosity = \"low\"\n";
  REQUIRE(write(fd, settings.data(), settings.size()) == static_cast<ssize_t>(settings.size()));
  close(fd);
  Gateway gw(appServer({{"FAKE_CODEX_MODE", "dump"},
                        {"CODEX_PROVIDER_BASE_URL", "http://127.0.0.1:9/v1"},
                        {"CODEX_PROVIDER_API_KEY", "sk-provider"},
                        {"CODEX_CONFIG_TOML", toml}}));
  unlink(toml);
  std::string body =
      R"({"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"one"},)"
      R"({"role":"assistant","content":"two"},{"role":"user","content":"three"}]})";

  REQUIRE(gw.post("/v1/chat/completions", body).status == 200);
  Json dump(readFile(gw.file("dump.json")));
  REQUIRE(dump.size("/requests") == 5);
  Json thread(dump.str("/requests/2")), inject(dump.str("/requests/3")),
      turn(dump.str("/requests/4"));
  CHECK(thread.str("/params/baseInstructions") == "be brief");
  CHECK(inject.str("/method") == "thread/inject_items");
  CHECK(inject.str("/params/items/0/role") == "user");
  CHECK(inject.str("/params/items/0/content/0/text") == "one");
  CHECK(inject.str("/params/items/1/role") == "assistant");
  CHECK(inject.str("/params/items/1/content/0/type") == "output_text");
  CHECK(turn.str("/params/input/0/text") == "three");
  // The provider key reaches Codex through its environment only, and never the gateway's key.
  CHECK(dump.str("/provider_api_key") == "sk-provider");
  CHECK(dump.boolean("/proxy_api_key_present") == false);
  std::string argv = readFile(gw.file("dump.json"));
  CHECK(argv.find("sk-provider\"") == argv.rfind("sk-provider\""));  // once: the env value
  CHECK(argv.find(R"(model_providers.gateway.base_url=\"http://127.0.0.1:9/v1\")") !=
        std::string::npos);
  CHECK(argv.find("--disable") != std::string::npos);
  // The operator's TOML settings come last, so they win over the gateway's own.
  CHECK(argv.find(R"("-c","model_verbosity='low'"])") != std::string::npos);
}

TEST_CASE("app-server: an upstream failure becomes an error envelope or an error frame") {
  Gateway gw(appServer({{"FAKE_CODEX_MODE", "error"}}));

  Response json = gw.post("/v1/chat/completions", kChat);
  CHECK(json.status == 502);
  CHECK(Json(json.body).str("/error/code") == "backend_error");
  CHECK(Json(json.body).str("/error/message") == "fake upstream failure");
  auto frames = sseData(gw.post("/v1/chat/completions", kStream).body);
  REQUIRE(frames.size() >= 2);
  CHECK(Json(frames[frames.size() - 2]).str("/error/code") == "backend_error");
  CHECK(frames.back() == "[DONE]");
}

TEST_CASE("app-server: a retry before any text is invisible; one after text ends the stream") {
  Gateway retry(appServer({{"FAKE_CODEX_MODE", "error-retry"}}));
  CHECK(contentOf(sseData(retry.post("/v1/chat/completions", kStream).body)) ==
        "Hello from fake-codex.");

  Gateway replay(appServer({{"FAKE_CODEX_MODE", "replay"}}));
  auto frames = sseData(replay.post("/v1/chat/completions", kStream).body);
  CHECK(contentOf(frames) == "Hello from");  // never "Hello fromHello from"
  REQUIRE(frames.size() >= 2);
  CHECK(Json(frames[frames.size() - 2]).str("/error/code") == "backend_error");
  CHECK(frames.back() == "[DONE]");
  CHECK(eventually([&] { return Gateway::childrenOf(replay.workerPids()).empty(); }));
}

TEST_CASE("app-server: our deadline ends a turn whose upstream never answers") {
  Gateway gw(appServer({{"FAKE_CODEX_MODE", "hang"}, {"PROXY_TIMEOUT_MS", "300"}}));

  Response r = gw.post("/v1/chat/completions", kChat);
  CHECK(r.status == 504);
  CHECK(Json(r.body).str("/error/code") == "request_timeout");
  CHECK(eventually([&] { return Gateway::childrenOf(gw.workerPids()).empty(); }));
}
