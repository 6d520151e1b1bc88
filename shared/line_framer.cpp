// Line framing helpers; see line_framer.hpp.
#include "line_framer.hpp"

namespace codex {

std::string_view LineFramer::trim(std::string_view line) {
  constexpr std::string_view kBlank = " \t\r\f\v";
  size_t first = line.find_first_not_of(kBlank);

  if (first == std::string_view::npos) {
    return {};
  }
  return line.substr(first, line.find_last_not_of(kBlank) - first + 1);
}

void LineFramer::keep(std::string_view tail) {
  if (discarding_) {
    return;
  }
  if (buffer_.size() + tail.size() > kMaxLine) {
    buffer_.clear();
    discarding_ = true;
    ++dropped_;
    return;
  }
  buffer_.append(tail);
}

}  // namespace codex
