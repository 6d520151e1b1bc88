// Tool-block scanning; see tool_blocks.hpp.
#include "tool_blocks.hpp"
#include "text.hpp"

#include <algorithm>

namespace codex {
namespace {

constexpr std::string_view kOpen = "<use_tool";
constexpr std::string_view kClose = "</use_tool>";

std::string innerTag(std::string_view block, std::string_view tag) {
  std::string open = "<" + std::string(tag) + ">";
  std::string close = "</" + std::string(tag) + ">";
  size_t start = block.find(open);
  size_t end = start == std::string_view::npos ? start : block.find(close, start + open.size());

  if (end == std::string_view::npos) {
    return "";
  }
  return std::string(trim(block.substr(start + open.size(), end - start - open.size())));
}

// name="…" or name='…' on the opening tag.
std::string nameAttribute(std::string_view block) {
  std::string_view tag = block.substr(0, block.find('>'));
  size_t at = tag.find("name=");

  if (at == std::string_view::npos || at + 5 >= tag.size()) {
    return "";
  }
  char quote = tag[at + 5];
  size_t end = tag.find(quote, at + 6);
  if ((quote != '"' && quote != '\'') || end == std::string_view::npos) {
    return "";
  }
  return std::string(trim(tag.substr(at + 6, end - at - 6)));
}

}  // namespace

size_t ToolBlockScanner::scan(std::string_view text) {
  size_t found = 0;

  for (;;) {
    size_t open = text.find(kOpen, scan_from_);
    if (open == std::string_view::npos) {
      // Keep the last few bytes: they may be the start of an opening tag still arriving.
      scan_from_ = text.size() > kOpen.size() ? text.size() - kOpen.size() : 0;
      scan_from_ = std::max(scan_from_, last_end_);
      return found;
    }
    size_t close = text.find(kClose, open + kOpen.size());
    if (close == std::string_view::npos) {
      scan_from_ = open;  // an unterminated block: wait for the rest
      return found;
    }
    last_end_ = close + kClose.size();
    last_ = parseToolBlock(text.substr(open, last_end_ - open));
    scan_from_ = last_end_;
    ++blocks_;
    ++found;
  }
}

ToolBlock parseToolBlock(std::string_view block) {
  ToolBlock parsed;

  parsed.name = innerTag(block, "name");
  if (parsed.name.empty()) {
    parsed.name = nameAttribute(block);
  }
  parsed.path = innerTag(block, "path");
  parsed.query = innerTag(block, "query");
  return parsed;
}

}  // namespace codex
