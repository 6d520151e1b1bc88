// Which executable a request's child runs: CODEX_BIN resolved as a shell would, and the native
// Codex binary rather than its Node wrapper when CODEX_BIN names the npm package.
#pragma once

#include <optional>
#include <string>

namespace codex {

// The executable to spawn, or nothing with `error` set to what a client is told ("spawn X
// ENOENT").
std::optional<std::string> resolveBinary(const std::string& name, std::string& error);

}  // namespace codex
