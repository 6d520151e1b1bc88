// The process-wide spare parsers; see json_parsers.hpp.
#include "json_parsers.hpp"

#include <mutex>
#include <vector>

namespace codex {
namespace {

// More spares than parses that run at once would only hold memory, and a parser grown for a
// huge line is dropped rather than kept for the small ones that follow.
constexpr size_t kMaxSpares = 8;
constexpr size_t kMaxSpareCapacity = 64 * 1024;

struct Spares {
  std::mutex mutex;
  std::vector<std::unique_ptr<simdjson::dom::parser>> parsers;
};

Spares& spares() {
  static Spares instance;
  return instance;
}

}  // namespace

ParserLease::ParserLease() {
  Spares& pool = spares();
  std::lock_guard lock(pool.mutex);

  if (!pool.parsers.empty()) {
    parser_ = std::move(pool.parsers.back());
    pool.parsers.pop_back();
  }
  if (!parser_) {
    parser_ = std::make_unique<simdjson::dom::parser>();
  }
}

ParserLease::~ParserLease() {
  Spares& pool = spares();
  std::lock_guard lock(pool.mutex);

  if (pool.parsers.size() < kMaxSpares && parser_->capacity() <= kMaxSpareCapacity) {
    pool.parsers.push_back(std::move(parser_));
  }
}

}  // namespace codex
