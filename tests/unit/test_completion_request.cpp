// Request bodies as clients send them, checked in the contract's order: messages or prompt, n,
// then the stream flag.
#include <doctest/doctest.h>

#include <string>
#include <variant>

#include "completion_request.hpp"

namespace codex {
namespace {

constexpr std::string_view kHello = R"("messages":[{"role":"user","content":"hi"}])";

std::string chatBody(std::string_view extra) {
  std::string body = "{" + std::string(kHello);

  if (!extra.empty()) {
    body += ",";
    body += extra;
  }
  return body + "}";
}

CompletionRequest accepted(const ParsedRequest& parsed) {
  if (const auto* error = std::get_if<ApiError>(&parsed)) {
    FAIL("rejected: " << error->message);
  }
  return std::get<CompletionRequest>(parsed);
}

ApiError rejected(const ParsedRequest& parsed) {
  REQUIRE(std::holds_alternative<ApiError>(parsed));
  return std::get<ApiError>(parsed);
}

CompletionRequest chat(std::string_view extra) {
  return accepted(parseChatRequest(chatBody(extra), true));
}

void checkInvalidRequest(const ApiError& error, std::string_view param, std::string_view message) {
  CHECK(error.status == 400);
  CHECK(error.type == "invalid_request_error");
  CHECK(error.code == "invalid_request_error");
  CHECK(error.param == std::string(param));
  CHECK(error.message == message);
}

TEST_CASE("chat without messages, with non-array or with empty messages is a 400 on messages") {
  for (const char* body : {R"({})", R"({"messages":null})", R"({"messages":"hi"})",
                           R"({"messages":{"role":"user"}})", R"({"messages":[]})"}) {
    CAPTURE(body);
    checkInvalidRequest(rejected(parseChatRequest(body, true)), "messages", "messages[] required");
  }
}

TEST_CASE("messages are checked before n") {
  checkInvalidRequest(rejected(parseChatRequest(R"({"n":2})", true)), "messages",
                      "messages[] required");
}

TEST_CASE("n above one is rejected as a number or a numeric string") {
  for (const char* n : {R"("n":2)", R"("n":"3")", R"("n":1.5)"}) {
    CAPTURE(n);
    checkInvalidRequest(rejected(parseChatRequest(chatBody(n), true)), "n", "n>1 is unsupported");
  }
}

TEST_CASE("n of one, zero, negative or non-numeric is accepted and ignored") {
  for (const char* n : {R"("n":1)", R"("n":0)", R"("n":-1)", R"("n":"x")", R"("n":"1")",
                        R"("n":null)", R"("n":"")"}) {
    CAPTURE(n);
    CHECK(std::holds_alternative<CompletionRequest>(parseChatRequest(chatBody(n), true)));
  }
}

TEST_CASE("a string stream flag is a 400 on stream (quirk Q5 expected)") {
  for (const char* stream : {R"("stream":"false")", R"("stream":"true")"}) {
    ApiError error = rejected(parseChatRequest(chatBody(stream), true));

    CAPTURE(stream);
    CHECK(error.status == 400);
    CHECK(error.param == std::string("stream"));
  }
}

TEST_CASE("n is checked before the stream flag") {
  CHECK(rejected(parseChatRequest(chatBody(R"("n":2,"stream":"yes")"), true)).param ==
        std::string("n"));
}

TEST_CASE("only a boolean true stream flag streams") {
  CHECK(chat(R"("stream":true)").stream);
  CHECK_FALSE(chat(R"("stream":false)").stream);
  CHECK_FALSE(chat(R"("stream":null)").stream);
  CHECK_FALSE(chat("").stream);
}

TEST_CASE("include_usage is read from stream_options and from the top level") {
  CHECK(chat(R"("stream":true,"stream_options":{"include_usage":true})").include_usage);
  CHECK(chat(R"("stream":true,"include_usage":true)").include_usage);
  CHECK_FALSE(chat(R"("stream":true,"stream_options":{"include_usage":false})").include_usage);
  CHECK_FALSE(chat(R"("stream":true,"stream_options":{})").include_usage);
  CHECK_FALSE(chat(R"("stream":true)").include_usage);
}

TEST_CASE("an absent or null model is nothing, a string is kept verbatim") {
  CHECK_FALSE(chat("").model.has_value());
  CHECK_FALSE(chat(R"("model":null)").model.has_value());
  CHECK(chat(R"("model":" Codex-5-HIGH ")").model == std::string(" Codex-5-HIGH "));
}

TEST_CASE("a number model is turned into its text") {
  CHECK(chat(R"("model":5)").model == std::string("5"));
}

TEST_CASE("reasoning.effort wins over reasoning_effort, which wins over reasoningEffort") {
  CHECK(
      chat(R"("reasoning":{"effort":"high"},"reasoning_effort":"low","reasoningEffort":"minimal")")
          .effort == std::string("high"));
  CHECK(chat(R"("reasoning_effort":"low","reasoningEffort":"minimal")").effort ==
        std::string("low"));
  CHECK(chat(R"("reasoningEffort":"minimal")").effort == std::string("minimal"));
  CHECK_FALSE(chat("").effort.has_value());
}

TEST_CASE("an empty or null effort gives way to the next source") {
  CHECK(chat(R"("reasoning":{"effort":""},"reasoning_effort":"low")").effort == std::string("low"));
  CHECK(chat(R"("reasoning":{"effort":null},"reasoningEffort":"high")").effort ==
        std::string("high"));
}

TEST_CASE("messages keep their roles and string contents in order") {
  CompletionRequest request = accepted(parseChatRequest(
      R"({"messages":[{"role":"system","content":"sys"},{"role":"user","content":"hi \u2026"}]})",
      true));

  REQUIRE(request.messages.size() == 2);
  CHECK(request.messages[0].role == "system");
  CHECK(request.messages[0].content == "sys");
  CHECK(request.messages[1].role == "user");
  CHECK(request.messages[1].content == "hi \xE2\x80\xA6");
}

TEST_CASE("content given as an array of text parts is joined") {
  CompletionRequest request = accepted(
      parseChatRequest(R"({"messages":[{"role":"user","content":[{"type":"text","text":"first"},)"
                       R"({"type":"text","text":"second"}]}]})",
                       true));

  REQUIRE(request.messages.size() == 1);
  CHECK(request.messages[0].content == "first\nsecond");
}

TEST_CASE("null or missing content reads as empty text, and a missing role as empty") {
  CompletionRequest request = accepted(
      parseChatRequest(R"({"messages":[{"role":"user","content":null},{"content":"x"}]})", true));

  REQUIRE(request.messages.size() == 2);
  CHECK(request.messages[0].content.empty());
  CHECK(request.messages[1].role.empty());
  CHECK(request.messages[1].content == "x");

  request = accepted(parseChatRequest(R"({"messages":[{"role":"user"}]})", true));
  CHECK(request.messages[0].content.empty());
}

TEST_CASE("a body sent with another content type reads as an empty object") {
  checkInvalidRequest(rejected(parseChatRequest(chatBody(""), false)), "messages",
                      "messages[] required");
  checkInvalidRequest(rejected(parseLegacyRequest(R"({"prompt":"hi"})", false)), "prompt",
                      "prompt required");
}

TEST_CASE("malformed JSON is a 400 invalid_json error without param") {
  for (const char* body : {"{", "not json", R"({"messages":[})", ""}) {
    ApiError error = rejected(parseChatRequest(body, true));

    CAPTURE(body);
    CHECK(error.status == 400);
    CHECK(error.type == "invalid_request_error");
    CHECK(error.code == "invalid_json");
    CHECK_FALSE(error.param.has_value());
  }
  CHECK(rejected(parseLegacyRequest("{", true)).code == "invalid_json");
}

TEST_CASE("legacy prompt string becomes one user message") {
  CompletionRequest request = accepted(parseLegacyRequest(R"({"prompt":"Say hi"})", true));

  REQUIRE(request.messages.size() == 1);
  CHECK(request.messages[0].role == "user");
  CHECK(request.messages[0].content == "Say hi");
}

TEST_CASE("legacy prompt array elements are joined with newlines") {
  CompletionRequest request = accepted(parseLegacyRequest(R"({"prompt":["one","two"]})", true));

  REQUIRE(request.messages.size() == 1);
  CHECK(request.messages[0].content == "one\ntwo");
}

TEST_CASE("legacy missing or empty prompt is a 400 on prompt") {
  for (const char* body : {R"({})", R"({"prompt":""})", R"({"prompt":[]})", R"({"prompt":null})"}) {
    CAPTURE(body);
    checkInvalidRequest(rejected(parseLegacyRequest(body, true)), "prompt", "prompt required");
  }
}

TEST_CASE("legacy requests get the chat checks of n and stream (quirk Q25 expected)") {
  CHECK(rejected(parseLegacyRequest(R"({"prompt":"x","n":2})", true)).param == std::string("n"));
  CHECK(rejected(parseLegacyRequest(R"({"prompt":"x","stream":"false"})", true)).param ==
        std::string("stream"));
}

TEST_CASE("legacy requests read stream, model and effort like chat") {
  CompletionRequest request = accepted(parseLegacyRequest(
      R"({"prompt":"x","stream":true,"model":"codex-5-low","reasoning_effort":"high"})", true));

  CHECK(request.stream);
  CHECK(request.model == std::string("codex-5-low"));
  CHECK(request.effort == std::string("high"));
}

}  // namespace
}  // namespace codex
