// The worker pool: a supervisor process that owns the FastCGI socket and forks worker
// processes, each of which serves many requests at once on a pool of threads.
#pragma once

#include <string>

#include <functional>
#include <optional>

#include "config.hpp"
#include "metrics.hpp"

namespace codex {

struct PoolOptions {
  std::string exec_shim;  // path of codex-exec
  std::string log_file;   // empty: stdout
};

// Reads the configuration afresh (environment, PROXY_CONFIG_FILE, command line); returns an
// error text when it does not parse.
using ConfigLoader = std::function<std::optional<std::string>(Config&)>;

// Runs the supervisor until SIGTERM or SIGINT; returns the process exit code. SIGHUP calls
// `load` and rolls the workers onto what it returns.
int runSupervisor(const Config& config, const ConfigLoader& load, const PoolOptions& options);

// Runs one worker process on the inherited listening socket; never returns.
[[noreturn]] void runWorker(const Config& config, const PoolOptions& options, int listen_fd,
                            const PoolMetrics& metrics);

// The rate limiter's table sits beside the slot table, so pools that share a stream cap also
// share their request budgets.
std::string rateLimitPath(const Config& config);

// Request threads per worker: enough that the pool always has a thread free to answer 429.
int64_t threadsPerWorker(const Config& config);

}  // namespace codex
