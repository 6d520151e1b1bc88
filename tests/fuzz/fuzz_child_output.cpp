// libFuzzer target: arbitrary child stdout, cut into reads of arbitrary sizes, through the
// framer, the proto protocol and the completion state, as the worker's read loop drives them.
//
// The same output is answered five ways at once: chat and legacy streams (include_usage), chat
// and legacy JSON bodies, and a chat stream shaped after tool blocks.
//
// Input layout: byte 0 picks how a response no event ended is closed (low bits) and the tool
// shaping variant (high bits), byte 1 seeds the read sizes (0: one read), the rest is what the
// child wrote.
//
// Invariants: lines do not depend on how the bytes were cut; every stream frame is
// `data: <one line of valid JSON>\n\n` or `data: [DONE]\n\n`; exactly one [DONE], last; after an
// error frame nothing but [DONE]; a chat stream with include_usage ends with a usage chunk whose
// total is the sum of its parts; the text the client sees is the text the state holds (a
// prefix of it when shaped); JSON bodies are valid JSON carrying that text.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "child_protocol.hpp"
#include "completion_state.hpp"
#include "config.hpp"
#include "invariant.hpp"
#include "line_framer.hpp"
#include "openai.hpp"

namespace {

using namespace codex;
using codex::fuzz::defaultConfig;
using codex::fuzz::parseJson;
using codex::fuzz::stringAt;

// The lines a framer must produce, computed from the whole output at once.
std::vector<std::string> expectedLines(std::string_view output) {
  constexpr std::string_view kBlank = " \t\r\f\v";
  std::vector<std::string> lines;
  size_t newline;

  while ((newline = output.find('\n')) != std::string_view::npos) {
    std::string_view line = output.substr(0, newline);
    output.remove_prefix(newline + 1);
    size_t first = line.find_first_not_of(kBlank);
    if (first != std::string_view::npos) {
      lines.emplace_back(line.substr(first, line.find_last_not_of(kBlank) - first + 1));
    }
  }
  return lines;
}

// Reads of 1..(seed + 1) bytes from a small deterministic generator; seed 0 is one read.
std::vector<std::string_view> cut(std::string_view output, uint8_t seed) {
  std::vector<std::string_view> reads;
  uint32_t state = seed * 2654435761u + 1;

  while (!output.empty()) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    size_t size = seed == 0 ? output.size() : 1 + state % (seed + 1u);
    size = std::min(size, output.size());
    reads.push_back(output.substr(0, size));
    output.remove_prefix(size);
  }
  return reads;
}

// Walks SSE frames: each one JSON line or [DONE]; [DONE] exactly once and last.
void checkFrames(const CompletionState& state, std::string_view frames) {
  const CompletionSpec& spec = state.spec();
  std::string_view rest = frames;
  simdjson::dom::parser parser;
  std::string seen_content;
  bool after_error = false;
  int done = 0;
  int usage_chunks = 0;

  while (!rest.empty()) {
    FUZZ_REQUIRE(done == 0);
    FUZZ_REQUIRE(rest.starts_with("data: "));
    size_t end = rest.find("\n\n");
    FUZZ_REQUIRE(end != std::string_view::npos);
    std::string_view payload = rest.substr(6, end - 6);
    rest.remove_prefix(end + 2);
    FUZZ_REQUIRE(payload.find_first_of("\r\n") == std::string_view::npos);
    if (payload == "[DONE]") {
      ++done;
      continue;
    }
    FUZZ_REQUIRE(!after_error);
    simdjson::dom::element chunk;
    FUZZ_REQUIRE(parseJson(parser, payload, chunk));
    if (stringAt(chunk, "/error/code") != "<missing>") {
      after_error = true;
      continue;
    }
    FUZZ_REQUIRE(stringAt(chunk, "/id") == spec.who.id);
    FUZZ_REQUIRE(stringAt(chunk, "/model") == spec.who.model);
    std::string_view piece = spec.route == Route::Chat ? stringAt(chunk, "/choices/0/delta/content")
                                                       : stringAt(chunk, "/choices/0/text");
    if (piece != "<missing>") {
      seen_content += piece;
    }
    int64_t prompt = 0, completion = 0, total = 0;
    if (chunk.at_pointer("/usage/total_tokens").get(total) == simdjson::SUCCESS) {
      ++usage_chunks;
      FUZZ_REQUIRE(chunk.at_pointer("/usage/prompt_tokens").get(prompt) == simdjson::SUCCESS);
      FUZZ_REQUIRE(chunk.at_pointer("/usage/completion_tokens").get(completion) ==
                   simdjson::SUCCESS);
      FUZZ_REQUIRE(prompt >= 0 && completion >= 0 && total == prompt + completion);
      FUZZ_REQUIRE(rest == kSseDone);
    }
  }
  FUZZ_REQUIRE(done == 1);
  // Tool shaping may hold back the tail; nothing else is ever withheld.
  if (state.spec().tools.active()) {
    FUZZ_REQUIRE(state.text().starts_with(seen_content));
  } else {
    FUZZ_REQUIRE(seen_content == state.text());
  }
  bool expect_usage = spec.route == Route::Chat && spec.include_usage && !after_error;
  FUZZ_REQUIRE(usage_chunks == (expect_usage ? 1 : 0));
}

void checkBody(const CompletionState& state) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;

  if (state.error()) {
    FUZZ_REQUIRE(parseJson(parser, errorBody(*state.error()), root));
    return;
  }
  FUZZ_REQUIRE(parseJson(parser, state.body(), root));
  const char* text =
      state.spec().route == Route::Chat ? "/choices/0/message/content" : "/choices/0/text";
  FUZZ_REQUIRE(stringAt(root, text) == state.content());
  int64_t prompt = 0, completion = 0, total = 0;
  FUZZ_REQUIRE(root.at_pointer("/usage/prompt_tokens").get(prompt) == simdjson::SUCCESS);
  FUZZ_REQUIRE(root.at_pointer("/usage/completion_tokens").get(completion) == simdjson::SUCCESS);
  FUZZ_REQUIRE(root.at_pointer("/usage/total_tokens").get(total) == simdjson::SUCCESS);
  FUZZ_REQUIRE(prompt >= 0 && completion >= 0 && total == prompt + completion);
}

CompletionSpec makeSpec(Route route, bool stream) {
  CompletionSpec spec;

  spec.route = route;
  spec.stream = stream;
  spec.include_usage = true;
  spec.who = {route == Route::Chat ? "chatcmpl-fuzz" : "cmpl-fuzz", 1700000000, "codex-5"};
  spec.prompt_estimate = 2;
  return spec;
}

// A chat stream shaped after tool blocks, in the variant `selector` picks.
CompletionSpec shapedSpec(uint8_t selector) {
  CompletionSpec spec = makeSpec(Route::Chat, true);

  spec.tools.suppress_tail = true;
  spec.tools.stop = (selector & 0x10) != 0;
  spec.tools.first_mode = (selector & 0x20) != 0;
  spec.tools.block_max = (selector >> 6) & 3;
  return spec;
}

// One response the same child output is answered with.
struct Lane {
  CompletionState state;
  std::string frames;
  bool ended = false;
  bool grace = false;  // a tool grace timer is running

  explicit Lane(CompletionSpec spec) : state(std::move(spec)), frames(state.openingFrames()) {}

  void apply(const ChildEvent& event) {
    if (ended) {
      return;  // the worker drains the rest once the response has ended
    }
    ended = state.apply(event, frames);
    if (!ended && state.toolAction() == ToolAction::Cut) {
      frames += state.cutFrames();
      ended = true;
    }
    grace = grace || state.toolAction() == ToolAction::StartGrace;
  }

  // How the worker closes a response no event ended, with the detail texts it really passes.
  void close(uint8_t selector) {
    if (ended || !state.spec().stream) {
      return;
    }
    if (grace) {
      frames += state.cutFrames();  // the grace timer fires before the child's exit is seen
      return;
    }
    switch ((selector & 0x0f) % 6) {
      case 0:
        frames += state.closingFrames(EndCause::ChildExited, "");
        break;
      case 1:
        frames += state.closingFrames(EndCause::ChildFailed, "backend exited with status 1");
        break;
      case 2:
        frames += state.closingFrames(EndCause::StreamIdle, "");
        break;
      case 3:
        frames += state.closingFrames(EndCause::RequestTimeout, "");
        break;
      case 4:
        frames += state.closingFrames(EndCause::SpawnFailed, "spawn /x ENOENT");
        break;
      default:
        frames += state.closingFrames(EndCause::SpawnFailed, "spawn timeout");
    }
  }

  void check() const {
    if (state.spec().stream) {
      checkFrames(state, frames);
    } else {
      checkBody(state);
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) {
    return 0;
  }
  uint8_t selector = data[0];
  std::string_view output(reinterpret_cast<const char*>(data) + 2, size - 2);
  std::vector<Lane> lanes;
  lanes.emplace_back(makeSpec(Route::Chat, true));
  lanes.emplace_back(makeSpec(Route::Legacy, true));
  lanes.emplace_back(makeSpec(Route::Chat, false));
  lanes.emplace_back(makeSpec(Route::Legacy, false));
  lanes.emplace_back(shapedSpec(selector));
  // The selector's top bit picks the wire protocol, so one corpus exercises both parsers.
  static const Config config = defaultConfig();
  auto protocol = (selector & 0x80) ? makeAppServerProtocol(config) : makeProtoProtocol(config);
  if (selector & 0x80) {
    protocol->openingInput({"req", {{"user", "hi"}}, "[user] hi", {}});
  }
  LineFramer framer;
  std::vector<std::string> lines;

  for (std::string_view read : cut(output, data[1])) {
    framer.feed(read, [&](std::string_view line) {
      lines.emplace_back(line);
      std::string reply;
      if (auto event = protocol->parseLine(line, reply)) {
        for (auto& lane : lanes) {
          lane.apply(*event);
        }
      }
    });
  }

  FUZZ_REQUIRE(lines == expectedLines(output));
  FUZZ_REQUIRE(framer.pending() == output.substr(output.rfind('\n') + 1));
  for (auto& lane : lanes) {
    lane.close(selector);
    lane.check();
  }
  return 0;
}
