// libFuzzer target: arbitrary request bodies through everything the worker does with a body
// before it spawns a child (parsing, model resolution, prompt, estimate, the child's stdin line).
//
// Invariants: parsing never crashes and answers either a request or a 400 envelope that is
// valid JSON; roles that reach the prompt are plain words; the effort passed to the child is
// one of the four known words; the submission written to the child's stdin is exactly one line
// of valid JSON that carries the prompt unchanged.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "child_protocol.hpp"
#include "completion_request.hpp"
#include "config.hpp"
#include "invariant.hpp"
#include "models.hpp"
#include "openai.hpp"
#include "prompt.hpp"

namespace {

using namespace codex;
using codex::fuzz::defaultConfig;
using codex::fuzz::parseJson;
using codex::fuzz::stringAt;

constexpr std::string_view kRequestId = "0123456789abcdef0123456789abcdef";

void checkEnvelope(const ApiError& error) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;

  FUZZ_REQUIRE(error.status >= 400 && error.status < 500);
  FUZZ_REQUIRE(!error.type.empty() && !error.code.empty() && !error.message.empty());
  FUZZ_REQUIRE(parseJson(parser, errorBody(error), root));
  FUZZ_REQUIRE(stringAt(root, "/error/message") == error.message);
  FUZZ_REQUIRE(stringAt(root, "/error/code") == error.code);
}

bool isPlainWord(std::string_view role) {
  for (char c : role) {
    bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!word && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

bool isKnownEffort(std::string_view effort) {
  return effort.empty() || effort == "low" || effort == "medium" || effort == "high" ||
         effort == "minimal";
}

void checkModel(const CompletionRequest& request, const ModelChoice& model) {
  const Config& config = defaultConfig();

  FUZZ_REQUIRE(model.effective == config.codex_model);
  FUZZ_REQUIRE(isKnownEffort(model.effort));
  if (!model.accepted) {
    // The requested text is echoed inside the JSON message, never anywhere else.
    checkEnvelope(errors::modelNotFound(model.requested));
    return;
  }
  if (!request.model) {
    FUZZ_REQUIRE(model.requested == config.codex_model);
  }
}

void checkPrompt(const CompletionRequest& request, const std::string& prompt) {
  size_t expected = request.messages.size() - 1;
  size_t content_bytes = 0;

  for (const auto& message : request.messages) {
    FUZZ_REQUIRE(isPlainWord(message.role));
    expected += (message.role.empty() ? 4 : message.role.size()) + 3 + message.content.size();
    content_bytes += message.content.size();
  }
  FUZZ_REQUIRE(prompt.size() == expected);
  FUZZ_REQUIRE(prompt.starts_with("["));
  int64_t estimate = estimatePromptTokens(request.messages);
  FUZZ_REQUIRE(estimate >= 0);
  FUZZ_REQUIRE(estimate <= static_cast<int64_t>((content_bytes + 3) / 4));
}

void checkSubmission(ChildProtocol& protocol, const ChildRequest& child) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string line = protocol.openingInput(child);

  FUZZ_REQUIRE(line.ends_with('\n'));
  FUZZ_REQUIRE(line.find('\n') == line.size() - 1);
  FUZZ_REQUIRE(parseJson(parser, line, root));
  FUZZ_REQUIRE(stringAt(root, "/id") == child.request_id);
  FUZZ_REQUIRE(stringAt(root, "/op/type") == "user_input");
  FUZZ_REQUIRE(stringAt(root, "/op/items/0/text") == child.prompt);

  for (const auto& argument : protocol.arguments(child)) {
    FUZZ_REQUIRE(argument.find_first_of(std::string_view("\n\0", 2)) == std::string::npos);
  }
}

void checkAccepted(const CompletionRequest& request) {
  const Config& config = defaultConfig();
  ModelChoice model = resolveModel(request.model, request.effort, config);

  checkModel(request, model);
  std::string prompt = joinPrompt(request.messages);
  checkPrompt(request, prompt);
  auto protocol = makeProtoProtocol(config);
  checkSubmission(*protocol, {std::string(kRequestId), request.messages, prompt, model});
}

void check(const ParsedRequest& parsed, bool legacy) {
  if (const auto* error = std::get_if<ApiError>(&parsed)) {
    FUZZ_REQUIRE(error->status == 400);
    checkEnvelope(*error);
    return;
  }
  const auto& request = std::get<CompletionRequest>(parsed);
  FUZZ_REQUIRE(!request.messages.empty());
  if (legacy) {
    FUZZ_REQUIRE(request.messages.size() == 1 && request.messages[0].role == "user");
    FUZZ_REQUIRE(!request.messages[0].content.empty());
  }
  checkAccepted(request);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);

  check(parseChatRequest(body, true), false);
  check(parseLegacyRequest(body, true), true);

  // Another content type reads as an empty object, whatever the bytes.
  auto chat = parseChatRequest(body, false);
  auto legacy = parseLegacyRequest(body, false);
  FUZZ_REQUIRE(std::holds_alternative<ApiError>(chat));
  FUZZ_REQUIRE(std::get<ApiError>(chat).param == "messages");
  FUZZ_REQUIRE(std::holds_alternative<ApiError>(legacy));
  FUZZ_REQUIRE(std::get<ApiError>(legacy).param == "prompt");
  return 0;
}
