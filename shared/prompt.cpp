// Prompt flattening and the chars/4 token estimate used for the context guard and for usage
// when the child reports no counts.
#include "prompt.hpp"

namespace codex {

std::string joinPrompt(const std::vector<ChatMessage>& messages) {
  std::string prompt;

  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& message = messages[i];
    if (i > 0) {
      prompt.push_back('\n');
    }
    prompt += '[';
    prompt += message.role.empty() ? "user" : message.role;
    prompt += "] ";
    prompt += message.content;
  }
  return prompt;
}

int64_t utf16Length(std::string_view utf8) {
  int64_t units = 0;

  for (unsigned char c : utf8) {
    if ((c & 0xC0) == 0x80) {
      continue;  // continuation byte
    }
    units += (c >= 0xF0) ? 2 : 1;  // four-byte sequences are surrogate pairs in UTF-16
  }
  return units;
}

int64_t estimateTokens(std::string_view text) {
  return (utf16Length(text) + 3) / 4;
}

int64_t estimatePromptTokens(const std::vector<ChatMessage>& messages) {
  int64_t chars = 0;

  for (const auto& message : messages) {
    chars += utf16Length(message.content);
  }
  return (chars + 3) / 4;
}

}  // namespace codex
