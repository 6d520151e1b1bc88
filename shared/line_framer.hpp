// Splits a child's stdout byte stream into complete lines.
//
// Reads arrive in arbitrary pieces: several lines at once, a line split across reads, a UTF-8
// character split across reads. Only complete lines are handed on, and '\n' never occurs inside
// a multi-byte UTF-8 sequence, so a split character is always rejoined before anyone decodes it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace codex {

class LineFramer {
 public:
  // A line longer than this is dropped rather than buffered without bound.
  static constexpr size_t kMaxLine = 16 * 1024 * 1024;

  // Calls on_line(std::string_view) for every complete, trimmed, non-blank line.
  template <typename OnLine>
  void feed(std::string_view bytes, OnLine&& on_line) {
    size_t newline;

    while ((newline = bytes.find('\n')) != std::string_view::npos) {
      std::string_view head = bytes.substr(0, newline);
      bytes.remove_prefix(newline + 1);
      if (discarding_ || buffer_.size() + head.size() > kMaxLine) {
        dropped_ += discarding_ ? 0 : 1;
        discarding_ = false;
        buffer_.clear();
        continue;
      }
      std::string_view line = head;
      if (!buffer_.empty()) {
        buffer_.append(head);
        line = buffer_;
      }
      emit(line, on_line);
      buffer_.clear();
    }
    keep(bytes);
  }

  // The unterminated tail, which is never parsed as an event.
  std::string_view pending() const { return buffer_; }
  size_t droppedLines() const { return dropped_; }

 private:
  template <typename OnLine>
  static void emit(std::string_view line, OnLine& on_line) {
    line = trim(line);
    if (!line.empty()) {
      on_line(line);
    }
  }

  static std::string_view trim(std::string_view line);
  void keep(std::string_view tail);

  std::string buffer_;
  bool discarding_ = false;
  size_t dropped_ = 0;
};

}  // namespace codex
