// Tool-block scanning and the stream shaping built on it.
#include <doctest/doctest.h>

#include <string>

#include "completion_state.hpp"
#include "tool_blocks.hpp"

using namespace codex;

TEST_CASE("a block is complete only once its closing tag arrives, however the text is split") {
  const std::string text =
      "Before <use_tool><name>web.search</name><path>/</path><query>hello world</query>"
      "</use_tool> AFTER";

  for (size_t cut = 1; cut < text.size(); ++cut) {
    CAPTURE(cut);
    ToolBlockScanner scanner;
    scanner.scan(std::string_view(text).substr(0, cut));
    bool early = scanner.blocks() == 1;
    scanner.scan(text);
    CHECK(early == (cut >= text.find(" AFTER")));
    CHECK(scanner.blocks() == 1);
    CHECK(scanner.lastBlockEnd() == text.find(" AFTER"));
    CHECK(scanner.lastBlock().name == "web.search");
    CHECK(scanner.lastBlock().query == "hello world");
  }
}

TEST_CASE("several blocks are counted and an unterminated one is not") {
  ToolBlockScanner scanner;

  CHECK(scanner.scan("<use_tool name='a'>x</use_tool> mid <use_tool name=\"b\">y</use_tool>") == 2);
  CHECK(scanner.lastBlock().name == "b");
  CHECK(scanner.scan("<use_tool name='a'>x</use_tool> mid <use_tool name=\"b\">y</use_tool> "
                     "<use_tool>open") == 0);
  CHECK(scanner.blocks() == 2);
}

TEST_CASE("shaping withholds the tail and asks for a cut or a grace period") {
  auto shapedStream = [](ToolShaping tools) {
    CompletionSpec spec;
    spec.stream = true;
    spec.who = {"chatcmpl-x", 1, "codex-5"};
    spec.tools = tools;
    return CompletionState(spec);
  };
  ChildEvent delta{ChildEvent::Kind::MessageDelta, "A <use_tool>t</use_tool> tail", {}, {}, {}};
  std::string frames;

  CompletionState suppress = shapedStream({true, false, false, 0});
  suppress.apply(delta, frames);
  CHECK(frames.find("tail") == std::string::npos);
  CHECK(frames.find("</use_tool>") != std::string::npos);
  CHECK(suppress.toolAction() == ToolAction::None);

  CompletionState first = shapedStream({false, true, true, 0});
  first.apply(delta, frames);
  CHECK(first.toolAction() == ToolAction::Cut);
  std::string cut = first.cutFrames();
  CHECK(cut.find(R"("finish_reason":"stop")") != std::string::npos);
  CHECK(cut.ends_with("data: [DONE]\n\n"));

  CompletionState burst = shapedStream({false, true, false, 0});
  burst.apply(delta, frames);
  CHECK(burst.toolAction() == ToolAction::StartGrace);

  CompletionState capped = shapedStream({false, false, false, 1});
  capped.apply(delta, frames);
  CHECK(capped.toolAction() == ToolAction::Cut);
}
