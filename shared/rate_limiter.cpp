// Shared fixed-window rate limiting; see rate_limiter.hpp.
#include "rate_limiter.hpp"

#include <pthread.h>

#include <cerrno>
#include <functional>

namespace codex {
namespace {

constexpr uint64_t kMagic = 0x5445544152584443;  // "CDXRATET"
constexpr uint32_t kLayoutVersion = 1;
constexpr uint32_t kProbes = 32;

}  // namespace

struct RateLimiter::Layout {
  struct Entry {
    uint64_t key;  // hash of the key; 0 is free
    int64_t window_start_ms;
    int64_t count;
  };

  SharedFileHeader header;
  pthread_mutex_t mutex;
  Entry entries[kEntries];
};

std::optional<std::string> RateLimiter::open(const std::string& path, RateLimiter& limiter) {
  auto initialise = [](void* memory) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&static_cast<Layout*>(memory)->mutex, &attr);
    pthread_mutexattr_destroy(&attr);
  };
  auto error = SharedFile::open(path, "rate limit table", kMagic, kLayoutVersion, sizeof(Layout),
                                initialise, limiter.file_);
  if (!error) {
    limiter.layout_ = static_cast<Layout*>(limiter.file_.memory());
  }
  return error;
}

RateDecision RateLimiter::hit(std::string_view key, int64_t window_ms, int64_t max,
                              int64_t now_ms) {
  uint64_t hash = std::hash<std::string_view>{}(key) | 1;  // never 0, the free marker
  Layout::Entry* chosen = nullptr;
  Layout::Entry* reusable = nullptr;

  // A holder that died mid-update leaves at worst one stale count behind.
  if (pthread_mutex_lock(&layout_->mutex) == EOWNERDEAD) {
    pthread_mutex_consistent(&layout_->mutex);
  }
  for (uint32_t i = 0; i < kProbes && chosen == nullptr; ++i) {
    auto& entry = layout_->entries[(hash + i) % kEntries];
    bool expired = now_ms - entry.window_start_ms >= window_ms;
    if (entry.key == hash) {
      chosen = &entry;
    } else if (reusable == nullptr && (entry.key == 0 || expired)) {
      reusable = &entry;  // free, or a key whose window is over: it can be forgotten
    }
  }
  if (chosen == nullptr) {
    // A full neighbourhood evicts its first entry: that key merely starts a fresh window.
    chosen = reusable != nullptr ? reusable : &layout_->entries[hash % kEntries];
    *chosen = {hash, now_ms, 0};
  }
  if (now_ms - chosen->window_start_ms >= window_ms) {
    chosen->window_start_ms = now_ms;
    chosen->count = 0;
  }
  chosen->count += 1;
  RateDecision decision;
  decision.allowed = chosen->count <= max;
  decision.retry_after_s = (chosen->window_start_ms + window_ms - now_ms + 999) / 1000;
  pthread_mutex_unlock(&layout_->mutex);
  return decision;
}

}  // namespace codex
