// Finds complete `<use_tool …>…</use_tool>` blocks in assistant text as it grows.
//
// Some clients (Obsidian Copilot) read tool requests written as these XML-like blocks and expect
// the assistant to stop after them; the gateway can withhold the text after the last complete
// block and end the stream there. An unterminated block is not a block yet.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace codex {

struct ToolBlock {
  std::string name;  // from <name>…</name>, else a name="…" attribute
  std::string path;
  std::string query;
};

class ToolBlockScanner {
 public:
  // Scans what `text` gained since the last call (text only ever grows); returns the blocks
  // completed by this call.
  size_t scan(std::string_view text);

  size_t blocks() const { return blocks_; }
  // Offset just past the last complete block's closing tag (0 before the first).
  size_t lastBlockEnd() const { return last_end_; }
  const ToolBlock& lastBlock() const { return last_; }

 private:
  size_t scan_from_ = 0;
  size_t blocks_ = 0;
  size_t last_end_ = 0;
  ToolBlock last_;
};

// Reads the fields of one block's text (from `<use_tool` to `</use_tool>` inclusive).
ToolBlock parseToolBlock(std::string_view block);

}  // namespace codex
