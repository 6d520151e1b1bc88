// Chat messages as the child sees them: one flattened prompt and a token estimate.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace codex {

struct ChatMessage {
  std::string role;
  std::string content;
};

// "[role] content" per message, joined with '\n'.
std::string joinPrompt(const std::vector<ChatMessage>& messages);

// Length in UTF-16 code units, the unit OpenAI-style estimates are defined in.
int64_t utf16Length(std::string_view utf8);

// ceil(chars / 4) over the message contents (roles and separators are not counted).
int64_t estimatePromptTokens(const std::vector<ChatMessage>& messages);
int64_t estimateTokens(std::string_view text);

}  // namespace codex
