// CompletionState turns the child's events into what a client sees: SSE frames for streams and
// one body otherwise. Frames are parsed as a client would and checked field by field.
#include <doctest/doctest.h>
#include <simdjson.h>

#include <string>
#include <vector>

#include "child_protocol.hpp"
#include "completion_state.hpp"
#include "line_framer.hpp"

namespace codex {
namespace {

using Kind = ChildEvent::Kind;

constexpr int64_t kPromptEstimate = 3;

// The SSE payloads of `frames`, each stripped of "data: ", in order.
std::vector<std::string> payloads(std::string_view frames) {
  std::vector<std::string> out;
  size_t end;

  while ((end = frames.find("\n\n")) != std::string_view::npos) {
    std::string_view frame = frames.substr(0, end);
    REQUIRE(frame.starts_with("data: "));
    out.emplace_back(frame.substr(6));
    frames.remove_prefix(end + 2);
  }
  CHECK(frames.empty());
  return out;
}

// Field lookups by JSON pointer. The element lives in a shared parser, so each helper turns it
// into a plain value before the next parse.
simdjson::dom::element at(std::string_view json, std::string_view pointer) {
  thread_local simdjson::dom::parser parser;

  return parser.parse(json.data(), json.size()).at_pointer(pointer).value();
}

std::string text(std::string_view json, std::string_view pointer) {
  return std::string(at(json, pointer).get_string().value());
}

int64_t number(std::string_view json, std::string_view pointer) {
  return at(json, pointer).get_int64().value();
}

bool isNull(std::string_view json, std::string_view pointer) {
  return at(json, pointer).is_null();
}

size_t arraySize(std::string_view json, std::string_view pointer) {
  return at(json, pointer).get_array().value().size();
}

size_t objectSize(std::string_view json, std::string_view pointer) {
  return at(json, pointer).get_object().value().size();
}

bool has(std::string_view json, std::string_view pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.parse(json.data(), json.size()).value();

  return root.at_pointer(pointer).error() == simdjson::SUCCESS;
}

CompletionSpec specFor(Route route, bool stream, bool include_usage = false) {
  CompletionSpec spec;

  spec.route = route;
  spec.stream = stream;
  spec.include_usage = include_usage;
  spec.who = {route == Route::Chat ? "chatcmpl-test" : "cmpl-test", 1700000000, "codex-5"};
  spec.prompt_estimate = kPromptEstimate;
  return spec;
}

ChildEvent delta(std::string text) {
  return {Kind::MessageDelta, std::move(text), {}, {}, {}};
}
ChildEvent message(std::string text) {
  return {Kind::Message, std::move(text), {}, {}, {}};
}

ChildEvent tokenCount(std::optional<int64_t> prompt, std::optional<int64_t> completion) {
  return {Kind::TokenCount, "", prompt, completion, {}};
}

ChildEvent providerUsage(std::optional<int64_t> prompt, std::optional<int64_t> completion) {
  return {Kind::ProviderUsage, "", prompt, completion, {}};
}

ChildEvent taskComplete(std::string reason = "", std::optional<int64_t> prompt = {},
                        std::optional<int64_t> completion = {}) {
  return {Kind::TaskComplete, std::move(reason), prompt, completion, {}};
}

ChildEvent backendError(std::string text) {
  return {Kind::Error, std::move(text), {}, {}, {}};
}

// Applies events in order and returns every frame a stream would send, opening frames first.
std::string run(CompletionState& state, const std::vector<ChildEvent>& events) {
  std::string frames = state.spec().stream ? state.openingFrames() : "";

  for (const auto& event : events) {
    state.apply(event, frames);
  }
  return frames;
}

// Like run(), then ends the response in a way no event announced (child exit, timer, spawn).
std::string runUntil(CompletionState& state, const std::vector<ChildEvent>& events, EndCause cause,
                     std::string_view detail = "") {
  std::string frames = run(state, events);

  frames += state.closingFrames(cause, detail);
  return frames;
}

// The fake "normal" shim's events (spec 26), without the ignored ones.
const std::vector<ChildEvent> kNormal = {delta("Hello f"), message("Hello from fake-codex."),
                                         tokenCount(8, 6), taskComplete()};

void checkEnvelope(const std::string& chunk) {
  CHECK(text(chunk, "/id") == "chatcmpl-test");
  CHECK(text(chunk, "/object") == "chat.completion.chunk");
  CHECK(number(chunk, "/created") == 1700000000);
  CHECK(text(chunk, "/model") == "codex-5");
}

void checkContentChunk(const std::string& chunk, std::string_view content) {
  checkEnvelope(chunk);
  CHECK(text(chunk, "/choices/0/delta/content") == content);
  CHECK(isNull(chunk, "/choices/0/finish_reason"));
  CHECK(isNull(chunk, "/usage"));
}

void checkFinishChunk(const std::string& chunk, std::string_view reason) {
  checkEnvelope(chunk);
  CHECK(arraySize(chunk, "/choices") == 1);
  CHECK(objectSize(chunk, "/choices/0/delta") == 0);
  CHECK(text(chunk, "/choices/0/finish_reason") == reason);
  CHECK(isNull(chunk, "/usage"));
}

void checkUsage(const std::string& json, int64_t prompt, int64_t completion) {
  CHECK(number(json, "/usage/prompt_tokens") == prompt);
  CHECK(number(json, "/usage/completion_tokens") == completion);
  CHECK(number(json, "/usage/total_tokens") == prompt + completion);
}

void checkUsageChunk(const std::string& chunk, int64_t prompt, int64_t completion,
                     std::string_view trigger) {
  checkEnvelope(chunk);
  CHECK(arraySize(chunk, "/choices") == 0);
  checkUsage(chunk, prompt, completion);
  CHECK(isNull(chunk, "/usage/time_to_first_token"));
  CHECK(isNull(chunk, "/usage/throughput_after_first_token"));
  CHECK(text(chunk, "/usage/emission_trigger") == trigger);
}

void checkErrorFrame(const std::string& frame, std::string_view message, std::string_view type,
                     std::string_view code) {
  CHECK(text(frame, "/error/message") == message);
  CHECK(text(frame, "/error/type") == type);
  CHECK(text(frame, "/error/code") == code);
  CHECK_FALSE(has(frame, "/id"));
  CHECK_FALSE(has(frame, "/choices"));
}

bool anyFinishReason(const std::vector<std::string>& frames) {
  for (const auto& frame : frames) {
    if (frame != "[DONE]" && has(frame, "/choices/0/finish_reason") &&
        !isNull(frame, "/choices/0/finish_reason")) {
      return true;
    }
  }
  return false;
}

TEST_CASE("chat stream of the normal sequence sends role, two pieces, stop and [DONE]") {
  CompletionState state(specFor(Route::Chat, true));

  auto frames = payloads(run(state, kNormal));

  REQUIRE(frames.size() == 5);
  checkEnvelope(frames[0]);
  CHECK(text(frames[0], "/choices/0/delta/role") == "assistant");
  CHECK(isNull(frames[0], "/choices/0/finish_reason"));
  CHECK(isNull(frames[0], "/usage"));
  checkContentChunk(frames[1], "Hello f");
  checkContentChunk(frames[2], "rom fake-codex.");
  checkFinishChunk(frames[3], "stop");
  CHECK(frames[4] == "[DONE]");
}

TEST_CASE("chat stream with include_usage adds a usage chunk 8/6/14 from token_count") {
  CompletionState state(specFor(Route::Chat, true, true));

  auto frames = payloads(run(state, kNormal));

  REQUIRE(frames.size() == 6);
  checkFinishChunk(frames[3], "stop");
  checkUsageChunk(frames[4], 8, 6, "token_count");
  CHECK(frames[5] == "[DONE]");
}

TEST_CASE("task_complete ends the response and reports stop") {
  CompletionState state(specFor(Route::Chat, true));
  std::string frames;

  CHECK_FALSE(state.apply(delta("x"), frames));
  CHECK_FALSE(state.apply(tokenCount(1, 1), frames));
  CHECK(state.apply(taskComplete(), frames));
  CHECK(state.taskComplete());
  CHECK(state.finishReason() == "stop");
  CHECK(frames.ends_with(kSseDone));
}

TEST_CASE("opening frames are the role chunk alone") {
  CompletionState state(specFor(Route::Chat, true));

  auto frames = payloads(state.openingFrames());

  REQUIRE(frames.size() == 1);
  CHECK(text(frames[0], "/choices/0/delta/role") == "assistant");
}

TEST_CASE("non-stream chat body carries the full message, stop and the reported usage") {
  CompletionState state(specFor(Route::Chat, false));
  std::string frames = run(state, kNormal);

  std::string body = state.body();

  CHECK(frames.empty());
  CHECK(text(body, "/id") == "chatcmpl-test");
  CHECK(text(body, "/object") == "chat.completion");
  CHECK(number(body, "/created") == 1700000000);
  CHECK(text(body, "/model") == "codex-5");
  CHECK(number(body, "/choices/0/index") == 0);
  CHECK(text(body, "/choices/0/message/role") == "assistant");
  CHECK(text(body, "/choices/0/message/content") == "Hello from fake-codex.");
  CHECK(text(body, "/choices/0/finish_reason") == "stop");
  checkUsage(body, 8, 6);
  CHECK(objectSize(body, "/usage") == 3);
}

TEST_CASE("task_complete finish_reason is passed through verbatim in both modes") {
  for (bool stream : {true, false}) {
    CompletionState state(specFor(Route::Chat, stream));

    auto frames = payloads(run(state, {delta("x"), taskComplete("content_filter")}));

    CAPTURE(stream);
    CHECK(state.finishReason() == "content_filter");
    if (stream) {
      REQUIRE(frames.size() == 4);
      checkFinishChunk(frames[2], "content_filter");
    } else {
      CHECK(text(state.body(), "/choices/0/finish_reason") == "content_filter");
    }
  }
}

TEST_CASE("child exit without task_complete finishes with length in both modes (Q14 expected)") {
  CompletionState stream(specFor(Route::Chat, true));
  CompletionState plain(specFor(Route::Chat, false));
  const std::vector<ChildEvent> events = {message("Hello (truncated) from fake-codex.")};

  auto sent = payloads(runUntil(stream, events, EndCause::ChildExited));
  run(plain, events);

  REQUIRE(sent.size() == 4);
  checkContentChunk(sent[1], "Hello (truncated) from fake-codex.");
  checkFinishChunk(sent[2], "length");
  CHECK(sent[3] == "[DONE]");
  CHECK(text(plain.body(), "/choices/0/finish_reason") == "length");
  CHECK(text(plain.body(), "/choices/0/message/content") == "Hello (truncated) from fake-codex.");
}

TEST_CASE("child exit with no text says No output from backend. in both modes") {
  CompletionState stream(specFor(Route::Chat, true));
  CompletionState plain(specFor(Route::Chat, false));

  auto sent = payloads(runUntil(stream, {}, EndCause::ChildExited));

  REQUIRE(sent.size() == 4);
  checkContentChunk(sent[1], kNoOutput);
  checkFinishChunk(sent[2], "length");
  CHECK(sent[3] == "[DONE]");
  CHECK(text(plain.body(), "/choices/0/message/content") == kNoOutput);
  CHECK(text(plain.body(), "/choices/0/finish_reason") == "length");
}

TEST_CASE("the no-output fallback is counted as the completion in both modes (Q17 expected)") {
  // Spec 10: the completion estimate is ceil(chars/4) of the final content; 23 chars -> 6.
  CompletionState stream(specFor(Route::Chat, true, true));
  CompletionState plain(specFor(Route::Chat, false));

  auto sent = payloads(runUntil(stream, {}, EndCause::ChildExited));

  REQUIRE(sent.size() == 5);
  checkUsageChunk(sent[3], kPromptEstimate, 6, "close");
  checkUsage(plain.body(), kPromptEstimate, 6);
}

TEST_CASE("chat stream that completes without text sends no content chunk") {
  CompletionState state(specFor(Route::Chat, true));

  auto frames = payloads(run(state, {taskComplete()}));

  REQUIRE(frames.size() == 3);
  CHECK(has(frames[0], "/choices/0/delta/role"));
  checkFinishChunk(frames[1], "stop");
  CHECK(frames[2] == "[DONE]");
}

TEST_CASE("an agent_message that does not extend the sent text is not forwarded") {
  CompletionState state(specFor(Route::Chat, true));

  auto frames = payloads(run(state, {delta("Hello"), message("Goodbye"), taskComplete()}));

  REQUIRE(frames.size() == 4);
  checkContentChunk(frames[1], "Hello");
  CHECK(state.text() == "Hello");
}

TEST_CASE("an agent_message with nothing before it is forwarded whole") {
  CompletionState state(specFor(Route::Chat, true));

  auto frames = payloads(run(state, {message("Provider supplied usage chunk.")}));

  REQUIRE(frames.size() == 2);
  checkContentChunk(frames[1], "Provider supplied usage chunk.");
}

TEST_CASE("provider usage overwrites the counts and token_count only raises them") {
  CompletionState state(specFor(Route::Chat, true, true));

  run(state, {delta("x"), tokenCount(20, 10), providerUsage(9, 5)});
  CHECK(state.usage().prompt_tokens == 9);
  CHECK(state.usage().completion_tokens == 5);

  run(state, {tokenCount(7, 8)});
  CHECK(state.usage().prompt_tokens == 9);
  CHECK(state.usage().completion_tokens == 8);
  CHECK(state.emissionTrigger() == "token_count");
}

TEST_CASE("token_count keeps the largest count seen for each field") {
  CompletionState state(specFor(Route::Chat, false));

  run(state, {tokenCount(8, 6), tokenCount(5, 9), taskComplete("", 2, 1)});

  checkUsage(state.body(), 8, 9);
}

TEST_CASE("a usage field never reported falls back to its estimate (Q31 expected)") {
  CompletionState only_prompt(specFor(Route::Chat, false));
  CompletionState only_completion(specFor(Route::Chat, false));

  run(only_prompt, {message("Hello from fake-codex."), tokenCount(8, std::nullopt)});
  run(only_completion, {message("Hello from fake-codex."), providerUsage(std::nullopt, 2)});

  checkUsage(only_prompt.body(), 8, 6);  // 22 characters of text -> 6
  checkUsage(only_completion.body(), kPromptEstimate, 2);
}

TEST_CASE("without any reported count both fields are estimates") {
  CompletionState state(specFor(Route::Chat, false));

  run(state, {message("Hello from fake-codex."), taskComplete()});

  checkUsage(state.body(), kPromptEstimate, 6);
}

TEST_CASE("the first usage-bearing event names the emission trigger") {
  CompletionState provider(specFor(Route::Chat, true, true));
  CompletionState finished(specFor(Route::Chat, true, true));
  CompletionState bare(specFor(Route::Chat, true, true));

  auto by_provider =
      payloads(run(provider, {delta("x"), providerUsage(9, 5), tokenCount(1, 1), taskComplete()}));
  auto by_task = payloads(run(finished, {delta("x"), taskComplete("", 4, 2)}));
  auto by_end = payloads(run(bare, {delta("x"), taskComplete()}));

  REQUIRE(by_provider.size() == 5);
  REQUIRE(by_task.size() == 5);
  REQUIRE(by_end.size() == 5);
  checkUsageChunk(by_provider[3], 9, 5, "provider");
  checkUsageChunk(by_task[3], 4, 2, "task_complete");
  checkUsageChunk(by_end[3], kPromptEstimate, 1, "task_complete");
}

TEST_CASE("emission trigger is close when the child exits without counts (Q15 expected)") {
  CompletionState state(specFor(Route::Chat, true, true));

  auto frames = payloads(
      runUntil(state, {message("Hello (truncated) from fake-codex.")}, EndCause::ChildExited));

  REQUIRE(frames.size() == 5);
  checkFinishChunk(frames[2], "length");
  checkUsageChunk(frames[3], kPromptEstimate, 9, "close");  // 34 characters -> 9
  CHECK(frames[4] == "[DONE]");
}

TEST_CASE("token_count without task_complete keeps its trigger and reports length") {
  CompletionState state(specFor(Route::Chat, true, true));

  auto frames =
      payloads(runUntil(state, {message("Token-count only stream response."), tokenCount(11, 7)},
                        EndCause::ChildExited));

  REQUIRE(frames.size() == 5);
  checkFinishChunk(frames[2], "length");
  checkUsageChunk(frames[3], 11, 7, "token_count");
}

TEST_CASE("without include_usage no chunk carries usage, even after provider usage") {
  CompletionState state(specFor(Route::Chat, true));

  auto frames = payloads(run(state, {message("x"), providerUsage(9, 5), taskComplete()}));

  REQUIRE(frames.size() == 4);
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(isNull(frames[i], "/usage"));
  }
}

TEST_CASE("a backend error ends the stream with an error frame and [DONE], no finish chunk") {
  CompletionState state(specFor(Route::Chat, true, true));
  std::string frames = run(state, {delta("partial")});

  CHECK(state.apply(backendError("fake backend failure"), frames));

  auto sent = payloads(frames);
  REQUIRE(sent.size() == 4);
  checkContentChunk(sent[1], "partial");
  checkErrorFrame(sent[2], "fake backend failure", "server_error", "backend_error");
  CHECK(sent[3] == "[DONE]");
  CHECK_FALSE(anyFinishReason(sent));
}

TEST_CASE("a backend error in non-stream mode sends nothing and leaves a 502 error") {
  CompletionState state(specFor(Route::Chat, false));
  std::string frames;

  CHECK(state.apply(backendError("fake backend failure"), frames));

  CHECK(frames.empty());
  REQUIRE(state.error().has_value());
  CHECK(state.error()->status == 502);
  CHECK(state.error()->code == "backend_error");
  CHECK(state.error()->message == "fake backend failure");
}

TEST_CASE("request timeout ends the stream with a request_timeout error frame") {
  CompletionState state(specFor(Route::Chat, true, true));

  auto frames = payloads(runUntil(state, {delta("tick-0 ")}, EndCause::RequestTimeout));

  REQUIRE(frames.size() == 4);
  checkErrorFrame(frames[2], "request timeout", "timeout_error", "request_timeout");
  CHECK(frames[3] == "[DONE]");
  CHECK_FALSE(anyFinishReason(frames));
}

TEST_CASE("spawn failure ends the stream with a spawn_error frame carrying the system text") {
  CompletionState state(specFor(Route::Chat, true));

  auto frames = payloads(runUntil(state, {}, EndCause::SpawnFailed, "spawn /x ENOENT"));

  REQUIRE(frames.size() == 3);
  checkErrorFrame(frames[1], "spawn /x ENOENT", "server_error", "spawn_error");
  CHECK(frames[2] == "[DONE]");
}

TEST_CASE("a spawn failure whose text mentions a timeout is reported as a timeout (spec 6.3)") {
  CompletionState state(specFor(Route::Chat, true));

  auto frames = payloads(state.closingFrames(EndCause::SpawnFailed, "spawn Timeout exceeded"));

  REQUIRE(frames.size() == 2);
  checkErrorFrame(frames[0], "request timeout", "timeout_error", "request_timeout");
  CHECK(frames[1] == "[DONE]");
}

TEST_CASE("chat stream idle end finalises like a child exit, without an error frame") {
  CompletionState state(specFor(Route::Chat, true, true));

  auto frames = payloads(runUntil(state, {delta("Hello (pre-hang)")}, EndCause::StreamIdle));

  REQUIRE(frames.size() == 5);
  checkFinishChunk(frames[2], "length");
  checkUsageChunk(frames[3], kPromptEstimate, 4, "close");
  CHECK(frames[4] == "[DONE]");
}

TEST_CASE("legacy stream sends text_completion.chunk pieces and a final finish chunk, no role") {
  CompletionState state(specFor(Route::Legacy, true, true));

  CHECK(state.openingFrames().empty());
  auto frames = payloads(run(state, kNormal));

  REQUIRE(frames.size() == 4);
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(text(frames[i], "/id") == "cmpl-test");
    CHECK(text(frames[i], "/object") == "text_completion.chunk");
    CHECK(number(frames[i], "/created") == 1700000000);
    CHECK(text(frames[i], "/model") == "codex-5");
    CHECK_FALSE(has(frames[i], "/usage"));
    CHECK_FALSE(has(frames[i], "/choices/0/logprobs"));
    CHECK_FALSE(has(frames[i], "/choices/0/delta"));
  }
  CHECK(text(frames[0], "/choices/0/text") == "Hello f");
  CHECK_FALSE(has(frames[0], "/choices/0/finish_reason"));
  CHECK(text(frames[1], "/choices/0/text") == "rom fake-codex.");
  CHECK_FALSE(has(frames[1], "/choices/0/finish_reason"));
  CHECK(text(frames[2], "/choices/0/text") == "");
  CHECK(text(frames[2], "/choices/0/finish_reason") == "stop");
  CHECK(frames[3] == "[DONE]");
}

TEST_CASE("legacy stream exit without task_complete finishes with length (Q25 expected)") {
  CompletionState state(specFor(Route::Legacy, true));

  auto frames = payloads(runUntil(state, {delta("partial")}, EndCause::ChildExited));

  REQUIRE(frames.size() == 3);
  CHECK(text(frames[0], "/choices/0/text") == "partial");
  CHECK(text(frames[1], "/choices/0/finish_reason") == "length");
  CHECK(frames[2] == "[DONE]");
}

TEST_CASE("legacy stream that completes without text still says No output from backend.") {
  // Spec 15.3: on task_complete, if nothing was sent, one chunk with the fallback text.
  CompletionState state(specFor(Route::Legacy, true));

  auto frames = payloads(run(state, {taskComplete()}));

  REQUIRE(frames.size() == 3);
  CHECK(text(frames[0], "/choices/0/text") == kNoOutput);
  CHECK(text(frames[1], "/choices/0/finish_reason") == "stop");
  CHECK(frames[2] == "[DONE]");
}

TEST_CASE("legacy stream idle end sends an idle_timeout error frame") {
  CompletionState state(specFor(Route::Legacy, true));

  auto frames = payloads(runUntil(state, {delta("x")}, EndCause::StreamIdle));

  REQUIRE(frames.size() == 3);
  checkErrorFrame(frames[1], "backend idle timeout", "timeout_error", "idle_timeout");
  CHECK(frames[2] == "[DONE]");
}

TEST_CASE("legacy non-stream body is a text_completion with the text and usage") {
  CompletionState state(specFor(Route::Legacy, false));
  run(state, kNormal);

  std::string body = state.body();

  CHECK(text(body, "/id") == "cmpl-test");
  CHECK(text(body, "/object") == "text_completion");
  CHECK(text(body, "/model") == "codex-5");
  CHECK(text(body, "/choices/0/text") == "Hello from fake-codex.");
  CHECK(isNull(body, "/choices/0/logprobs"));
  CHECK(text(body, "/choices/0/finish_reason") == "stop");
  checkUsage(body, 8, 6);
}

TEST_CASE("the normal shim's stdout, read in odd pieces, yields the documented chat stream") {
  const std::string stdout_bytes =
      "{\"type\":\"session_configured\"}\n{\"type\":\"task_started\"}\n"
      "{\"type\":\"agent_reasoning_delta\",\"msg\":{\"delta\":\"\xE2\x80\xA6\"}}\n"
      "{\"type\":\"agent_message_delta\",\"msg\":{\"delta\":\"Hello f\"}}\n"
      "{\"type\":\"agent_message\",\"msg\":{\"message\":\"Hello from fake-codex.\"}}\n"
      "{\"type\":\"token_count\",\"msg\":{\"prompt_tokens\":8,\"completion_tokens\":6}}\n"
      "{\"type\":\"task_complete\"}\n";
  Config config;
  auto protocol = makeProtoProtocol(config);
  CompletionState state(specFor(Route::Chat, true, true));
  LineFramer framer;
  std::string frames = state.openingFrames();
  std::string reply;

  for (size_t offset = 0; offset < stdout_bytes.size(); offset += 7) {
    framer.feed(std::string_view(stdout_bytes).substr(offset, 7), [&](std::string_view line) {
      auto event = protocol->parseLine(line, reply);
      REQUIRE(event.has_value());
      state.apply(*event, frames);
    });
  }

  auto sent = payloads(frames);
  REQUIRE(sent.size() == 6);
  checkContentChunk(sent[1], "Hello f");
  checkContentChunk(sent[2], "rom fake-codex.");
  checkFinishChunk(sent[3], "stop");
  checkUsageChunk(sent[4], 8, 6, "token_count");
  CHECK(sent[5] == "[DONE]");
}

}  // namespace
}  // namespace codex
