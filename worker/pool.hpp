// The worker pool: a supervisor process that owns the FastCGI socket and forks worker
// processes, each of which serves many requests at once on a pool of threads.
#pragma once

#include <string>

#include "config.hpp"

namespace codex {

struct PoolOptions {
  std::string exec_shim;  // path of codex-exec
  std::string log_file;   // empty: stdout
};

// Runs the supervisor until SIGTERM or SIGINT; returns the process exit code.
int runSupervisor(const Config& config, const PoolOptions& options);

// Runs one worker process on the inherited listening socket; never returns.
[[noreturn]] void runWorker(const Config& config, const PoolOptions& options, int listen_fd);

// The rate limiter's table sits beside the slot table, so pools that share a stream cap also
// share their request budgets.
std::string rateLimitPath(const Config& config);

// Request threads per worker: enough that the pool always has a thread free to answer 429.
int64_t threadsPerWorker(const Config& config);

}  // namespace codex
