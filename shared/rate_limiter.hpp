// A fixed-window request limiter shared by every worker of a pool (and every pool naming the
// same file), so the budget does not multiply with the number of processes.
//
// A key's window starts with its first request and lasts the configured length; every request
// in it counts, rejected ones included. Keys are stored as 64-bit hashes in an open-addressing
// table guarded by one process-shared robust mutex: the critical section is a few loads and
// stores, and a holder that dies inside it costs at most one miscounted request.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "shared_file.hpp"

namespace codex {

struct RateDecision {
  bool allowed = true;
  int64_t retry_after_s = 0;  // whole seconds until the key's window ends
};

class RateLimiter {
 public:
  static constexpr uint32_t kEntries = 16384;

  static std::optional<std::string> open(const std::string& path, RateLimiter& limiter);

  RateDecision hit(std::string_view key, int64_t window_ms, int64_t max, int64_t now_ms);

 private:
  struct Layout;

  SharedFile file_;
  Layout* layout_ = nullptr;
};

}  // namespace codex
