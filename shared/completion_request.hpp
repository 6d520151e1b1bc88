// Reading a completion request body: the checks OpenAI clients expect, in the order the
// contract gives (messages or prompt, n, stream type), each failing with its own envelope.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "openai.hpp"
#include "prompt.hpp"

namespace codex {

struct CompletionRequest {
  std::vector<ChatMessage> messages;
  std::optional<std::string> model;   // the model field as text; nullopt when absent or null
  std::optional<std::string> effort;  // first non-empty explicit reasoning effort
  bool stream = false;
  bool include_usage = false;
};

using ParsedRequest = std::variant<CompletionRequest, ApiError>;

// `is_json` is false for bodies sent with another content type: they read as an empty object.
ParsedRequest parseChatRequest(std::string_view body, bool is_json);
// /v1/completions: `prompt` (a string or an array of strings) becomes one user message.
ParsedRequest parseLegacyRequest(std::string_view body, bool is_json);

}  // namespace codex
