// CODEX_CONFIG_TOML; see codex_overrides.hpp. toml++ parses and re-prints the values, so what
// Codex receives is TOML exactly as the operator wrote it, whatever the type.
#include "codex_overrides.hpp"

#include <toml++/toml.h>

#include <cctype>
#include <sstream>

namespace codex {
namespace {

// A key segment outside [A-Za-z0-9_-] must be quoted in a dotted key.
std::string keySegment(std::string_view key) {
  bool bare = !key.empty();
  for (char c : key) {
    bare = bare && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
  }
  if (bare) {
    return std::string(key);
  }
  std::ostringstream quoted;
  quoted << toml::value<std::string>(std::string(key));
  return quoted.str();
}

void flatten(const toml::table& table, const std::string& prefix, std::vector<std::string>& out) {
  for (const auto& [key, node] : table) {
    std::string path = prefix + keySegment(key.str());
    if (const auto* inner = node.as_table()) {
      flatten(*inner, path + ".", out);
      continue;
    }
    std::ostringstream value;
    node.visit([&value](const auto& v) { value << v; });
    out.push_back(path + "=" + value.str());
  }
}

}  // namespace

std::variant<std::vector<std::string>, std::string> loadCodexOverrides(const std::string& path) {
  std::vector<std::string> overrides;

  // Debian's toml++ reports errors by exception; this runs once, at start-up, never per request.
  try {
    flatten(toml::parse_file(path), "", overrides);
  } catch (const toml::parse_error& error) {
    std::ostringstream text;
    text << "CODEX_CONFIG_TOML: " << path << ": " << error.description() << " (line "
         << error.source().begin.line << ")";
    return text.str();
  }
  return overrides;
}

}  // namespace codex
