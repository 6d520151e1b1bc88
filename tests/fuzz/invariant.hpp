// Invariant checks for the libFuzzer targets: a broken invariant aborts, which libFuzzer reports
// as a crash and saves the input that caused it.
#pragma once

#include <simdjson.h>

#include "config.hpp"

#include <cstdio>
#include <cstdlib>
#include <string_view>

#define FUZZ_REQUIRE(condition)                                                              \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

namespace codex::fuzz {

// Parses `text` as one JSON document (simdjson checks UTF-8 too); the parser owns the result.
inline bool parseJson(simdjson::dom::parser& parser, std::string_view text,
                      simdjson::dom::element& root) {
  simdjson::padded_string padded(text);
  return parser.parse(padded).get(root) == simdjson::SUCCESS;
}

inline std::string_view stringAt(simdjson::dom::element root, const char* pointer) {
  std::string_view text;
  return root.at_pointer(pointer).get(text) == simdjson::SUCCESS ? text : "<missing>";
}

// The configuration with no variable set: what a fresh deployment runs with.
inline const Config& defaultConfig() {
  static const Config config = [] {
    Config c;
    auto error = loadConfig([](const char*) -> const char* { return nullptr; }, c);
    FUZZ_REQUIRE(!error);
    return c;
  }();
  return config;
}

}  // namespace codex::fuzz
