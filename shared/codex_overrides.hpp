// Operator settings for the Codex CLI beyond what the gateway's own variables cover, read from
// a TOML file (CODEX_CONFIG_TOML) and handed to each app-server child as `-c key=value`.
#pragma once

#include <string>
#include <variant>
#include <vector>

namespace codex {

// Flattens every value of the file into `dotted.key=<TOML value>`, sorted by key. Returns the
// overrides, or an error naming the file and the place it fails to parse.
std::variant<std::vector<std::string>, std::string> loadCodexOverrides(const std::string& path);

}  // namespace codex
