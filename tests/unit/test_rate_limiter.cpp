// The shared fixed-window rate limiter.
#include <doctest/doctest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

#include "rate_limiter.hpp"

using namespace codex;

namespace {

struct TempTable {
  TempTable() {
    char pattern[] = "/tmp/rate-test-XXXXXX";
    dir = mkdtemp(pattern);
    path = dir + "/table.rate";
  }
  ~TempTable() { std::filesystem::remove_all(dir); }

  std::string dir;
  std::string path;
};

}  // namespace

TEST_CASE("a key gets max requests per window, then 429 until the window ends") {
  TempTable tmp;
  RateLimiter limiter;
  REQUIRE_FALSE(RateLimiter::open(tmp.path, limiter));

  for (int i = 0; i < 3; ++i) {
    CHECK(limiter.hit("key:a", 60000, 3, 1000 + i).allowed);
  }
  RateDecision over = limiter.hit("key:a", 60000, 3, 1500);
  CHECK_FALSE(over.allowed);
  CHECK(over.retry_after_s == 60);  // ceil((1000 + 60000 - 1500) / 1000)
  CHECK(limiter.hit("key:b", 60000, 3, 1500).allowed);
  CHECK(limiter.hit("key:a", 60000, 3, 61000).allowed);  // a new window starts with count 1
  CHECK(limiter.hit("key:a", 60000, 3, 61001).allowed);
}

TEST_CASE("rejected requests count too, so a client cannot retry its way in") {
  TempTable tmp;
  RateLimiter limiter;
  REQUIRE_FALSE(RateLimiter::open(tmp.path, limiter));

  CHECK(limiter.hit("k", 1000, 1, 0).allowed);
  CHECK_FALSE(limiter.hit("k", 1000, 1, 10).allowed);
  CHECK_FALSE(limiter.hit("k", 1000, 1, 999).allowed);
  CHECK(limiter.hit("k", 1000, 1, 1000).allowed);
}

TEST_CASE("processes sharing the table share one budget exactly") {
  TempTable tmp;
  constexpr int kProcesses = 6;
  constexpr int kHits = 200;
  constexpr int kMax = 500;
  auto* allowed =
      static_cast<std::atomic<int>*>(mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE,
                                          MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  new (allowed) std::atomic<int>(0);

  for (int p = 0; p < kProcesses; ++p) {
    if (fork() == 0) {
      RateLimiter limiter;
      if (RateLimiter::open(tmp.path, limiter)) {
        _exit(1);
      }
      for (int i = 0; i < kHits; ++i) {
        *allowed += limiter.hit("shared", 3600000, kMax, 1).allowed ? 1 : 0;
      }
      _exit(0);
    }
  }
  for (int p = 0; p < kProcesses; ++p) {
    int status = 0;
    wait(&status);
    CHECK(WEXITSTATUS(status) == 0);
  }
  CHECK(allowed->load() == kMax);
  munmap(allowed, sizeof(std::atomic<int>));
}

TEST_CASE("a table of another layout is refused") {
  TempTable tmp;
  {
    FILE* f = fopen(tmp.path.c_str(), "w");
    fputs("not a rate table", f);
    fclose(f);
  }
  RateLimiter limiter;
  auto error = RateLimiter::open(tmp.path, limiter);
  REQUIRE(error);
  CHECK(error->find(tmp.path) != std::string::npos);
}
