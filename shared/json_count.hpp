// How every child protocol reads a token count or an id out of parsed JSON, in one place.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <optional>

namespace codex {

// A non-negative whole number a JavaScript client can hold exactly (below 2^53); doubles are
// truncated. Anything else, absurd sizes from a broken or hostile child included, is absent,
// so sums of counts never overflow.
inline std::optional<int64_t> countValue(simdjson::dom::element value) {
  constexpr int64_t kMaxCount = int64_t{1} << 53;
  int64_t number;
  double real;

  if (value.get(number) == simdjson::SUCCESS) {
    return number >= 0 && number < kMaxCount ? std::optional(number) : std::nullopt;
  }
  if (value.get(real) == simdjson::SUCCESS && real >= 0 && real < static_cast<double>(kMaxCount)) {
    return static_cast<int64_t>(real);
  }
  return std::nullopt;
}

}  // namespace codex
