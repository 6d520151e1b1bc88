// Completion request parsing; see completion_request.hpp.
#include "completion_request.hpp"

#include <simdjson.h>

#include <cctype>
#include <cmath>

namespace codex {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

std::optional<element> field(element object, std::string_view name) {
  element value;

  if (!object.is_object() || object[name].get(value) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  return value;
}

// Strings verbatim; anything else as compact JSON, except null which reads as nothing.
std::string asText(element value) {
  std::string_view text;

  if (value.get(text) == simdjson::SUCCESS) {
    return std::string(text);
  }
  if (value.is_null()) {
    return "";
  }
  return simdjson::minify(value);
}

// Content parts of type "text" are joined; other parts keep their JSON form so nothing is lost.
std::string contentText(std::optional<element> content) {
  if (!content) {
    return "";
  }
  simdjson::dom::array parts;
  if (content->get(parts) != simdjson::SUCCESS) {
    return asText(*content);
  }
  std::string joined;
  for (element part : parts) {
    auto text = field(part, "text");
    std::string piece = text && text->is_string() ? asText(*text) : asText(part);
    if (!joined.empty() && !piece.empty()) {
      joined.push_back('\n');
    }
    joined += piece;
  }
  return joined;
}

bool truthy(std::optional<element> value) {
  bool flag = false;

  return value && value->get(flag) == simdjson::SUCCESS && flag;
}

// `n` counts only when it reads as a number above 1 (2 and "3" fail; 1, 0 and junk pass).
bool asksForSeveral(std::optional<element> n) {
  double number = 0;
  std::string_view text;

  if (!n) {
    return false;
  }
  if (n->get(number) == simdjson::SUCCESS) {
    return number > 1;
  }
  if (n->get(text) == simdjson::SUCCESS) {
    char* end = nullptr;
    std::string copy(text);
    double parsed = strtod(copy.c_str(), &end);
    return end != copy.c_str() && *end == '\0' && std::isfinite(parsed) && parsed > 1;
  }
  return false;
}

std::optional<std::string> firstEffort(element root) {
  std::optional<element> candidates[] = {
      field(root, "reasoning") ? field(*field(root, "reasoning"), "effort") : std::nullopt,
      field(root, "reasoning_effort"), field(root, "reasoningEffort")};

  for (const auto& candidate : candidates) {
    if (candidate && !candidate->is_null()) {
      std::string text = asText(*candidate);
      if (!text.empty()) {
        return text;
      }
    }
  }
  return std::nullopt;
}

// Common fields after the route-specific ones have been read.
std::optional<ApiError> readCommon(element root, CompletionRequest& request) {
  if (asksForSeveral(field(root, "n"))) {
    return errors::nUnsupported();
  }
  auto stream = field(root, "stream");
  if (stream && !stream->is_null() && !stream->is_bool()) {
    return errors::invalidField("stream", "stream must be a boolean");
  }
  request.stream = truthy(stream);
  auto options = field(root, "stream_options");
  request.include_usage = truthy(options ? field(*options, "include_usage") : std::nullopt) ||
                          truthy(field(root, "include_usage"));
  auto model = field(root, "model");
  if (model && !model->is_null()) {
    request.model = asText(*model);
  }
  request.effort = firstEffort(root);
  return std::nullopt;
}

// A message is an object whose role, when given, is a plain word: the role is written into the
// child's prompt as "[role]", so anything else could forge prompt structure.
std::optional<ApiError> checkMessage(element message, size_t index) {
  std::string where = "messages[" + std::to_string(index) + "]";

  if (!message.is_object()) {
    return errors::invalidField(where, where + " must be an object");
  }
  auto role = field(message, "role");
  if (!role || role->is_null()) {
    return std::nullopt;
  }
  std::string_view text;
  if (role->get(text) != simdjson::SUCCESS) {
    return errors::invalidField(where + ".role", where + ".role must be a string");
  }
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
      return errors::invalidField(where + ".role", where + ".role is not a valid role");
    }
  }
  return std::nullopt;
}

// Parses into `root`; a body that is not JSON by content type reads as an empty object.
std::optional<ApiError> parseRoot(simdjson::dom::parser& parser, std::string_view body,
                                  bool is_json, element& root) {
  static constexpr std::string_view kEmpty = "{}";
  std::string_view text = is_json ? body : kEmpty;

  auto error = parser.parse(text.data(), text.size()).get(root);
  if (error != simdjson::SUCCESS) {
    return errors::invalidJson(simdjson::error_message(error));
  }
  return std::nullopt;
}

}  // namespace

ParsedRequest parseChatRequest(std::string_view body, bool is_json) {
  simdjson::dom::parser parser;
  element root;
  CompletionRequest request;

  if (auto error = parseRoot(parser, body, is_json, root)) {
    return *error;
  }
  auto messages = field(root, "messages");
  simdjson::dom::array list;
  if (!messages || messages->get(list) != simdjson::SUCCESS || list.size() == 0) {
    return errors::messagesRequired();
  }
  size_t index = 0;
  for (element message : list) {
    if (auto error = checkMessage(message, index++)) {
      return *error;
    }
    auto role = field(message, "role");
    request.messages.push_back({role ? asText(*role) : "", contentText(field(message, "content"))});
  }
  if (auto error = readCommon(root, request)) {
    return *error;
  }
  return request;
}

ParsedRequest parseLegacyRequest(std::string_view body, bool is_json) {
  simdjson::dom::parser parser;
  element root;
  CompletionRequest request;

  if (auto error = parseRoot(parser, body, is_json, root)) {
    return *error;
  }
  auto prompt = field(root, "prompt");
  std::string text;
  simdjson::dom::array pieces;
  if (prompt && prompt->get(pieces) == simdjson::SUCCESS) {
    for (element piece : pieces) {
      text += (text.empty() ? "" : "\n") + asText(piece);
    }
  } else if (prompt) {
    text = asText(*prompt);
  }
  if (text.empty()) {
    return errors::promptRequired();
  }
  request.messages.push_back({"user", std::move(text)});
  if (auto error = readCommon(root, request)) {
    return *error;
  }
  return request;
}

}  // namespace codex
