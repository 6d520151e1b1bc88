// Tool-block shaping on chat streams: tail suppression and ending the stream after tools.
#include <doctest/doctest.h>

#include "gateway.hpp"
#include "json.hpp"

using namespace codex::test;

namespace {

const std::string kToolStream =
    R"({"model":"codex-5","stream":true,"stream_options":{"include_usage":true},)"
    R"("messages":[{"role":"user","content":"search"}]})";
const std::string kBlockEnd = "</use_tool>";

struct Shaped {
  std::string text;
  std::vector<std::string> frames;
  std::string end_reason;
};

// Streams the tools child's answer and collects what the client saw.
Shaped streamTools(std::map<std::string, std::string> env) {
  env["FAKE_CODEX_MODE"] = "tools";
  Gateway gw({2, env});
  Response r = gw.post("/v1/chat/completions", kToolStream);
  Shaped shaped;

  REQUIRE(r.status == 200);
  shaped.frames = sseData(r.body);
  for (const auto& frame : shaped.frames) {
    Json chunk(frame);
    if (chunk.has("/choices/0/delta/content")) {
      shaped.text += chunk.str("/choices/0/delta/content");
    }
  }
  // The summary line is written once the child is gone, which may be after the client's end.
  std::string marker = R"("req_id":")" + r.header("x-request-id") + R"(","method")";
  std::string log;
  REQUIRE(eventually([&] { return (log = gw.workerLog()).find(marker) != std::string::npos; }));
  size_t reason = log.find(R"("end_reason":")", log.find(marker)) + 14;
  shaped.end_reason = log.substr(reason, log.find('"', reason) - reason);
  return shaped;
}

// Finaliser, usage chunk and [DONE] close every shaped stream, cut or not.
void checkClosing(const Shaped& shaped) {
  REQUIRE(shaped.frames.size() >= 3);
  size_t n = shaped.frames.size();
  CHECK(Json(shaped.frames[n - 3]).str("/choices/0/finish_reason") == "stop");
  CHECK(Json(shaped.frames[n - 2]).num("/usage/total_tokens") > 0);
  CHECK(shaped.frames[n - 1] == "[DONE]");
}

}  // namespace

TEST_CASE("without shaping the text after a tool block is forwarded") {
  Shaped shaped = streamTools({});

  CHECK(shaped.text.ends_with(" AFTER_TOOL_TEXT"));
  CHECK(shaped.end_reason == "done");
  checkClosing(shaped);
}

TEST_CASE("tail suppression ends the text at the last complete tool block") {
  Shaped shaped = streamTools({{"PROXY_SUPPRESS_TAIL_AFTER_TOOLS", "true"}});

  CHECK(shaped.text.starts_with("Before <use_tool>"));
  CHECK(shaped.text.ends_with(kBlockEnd));
  CHECK(shaped.end_reason == "done");
  checkClosing(shaped);
}

TEST_CASE("stop after tools cuts the stream at once in first mode, at a block cap, or grace 0") {
  for (const auto& env : std::vector<std::map<std::string, std::string>>{
           {{"PROXY_STOP_AFTER_TOOLS", "true"}, {"PROXY_STOP_AFTER_TOOLS_MODE", "first"}},
           {{"PROXY_TOOL_BLOCK_MAX", "1"}},
           {{"PROXY_STOP_AFTER_TOOLS", "true"}, {"PROXY_STOP_AFTER_TOOLS_GRACE_MS", "0"}}}) {
    CAPTURE(env.begin()->first);
    Shaped shaped = streamTools(env);

    CHECK(shaped.text.ends_with(kBlockEnd));
    CHECK(shaped.end_reason == "tool_cut");
    checkClosing(shaped);
  }
}

TEST_CASE("a child that completes within the burst grace finishes normally") {
  Shaped shaped = streamTools(
      {{"PROXY_STOP_AFTER_TOOLS", "true"}, {"PROXY_STOP_AFTER_TOOLS_GRACE_MS", "60000"}});

  CHECK(shaped.text.ends_with(kBlockEnd));
  CHECK(shaped.end_reason == "done");
  checkClosing(shaped);
}
