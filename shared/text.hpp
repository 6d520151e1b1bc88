// The two text helpers every parser here needs, in one place: ASCII-only on purpose, since they
// serve protocol tokens (paths, header values, model ids, booleans), never user text.
#pragma once

#include <string>
#include <string_view>

namespace codex {

// Without leading and trailing spaces, tabs, CR, LF, FF and VT.
std::string_view trim(std::string_view text);

// ASCII letters lowered.
std::string lower(std::string_view text);

}  // namespace codex
