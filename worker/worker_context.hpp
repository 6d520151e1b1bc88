// What every request thread of a worker process shares: configuration, the slot table, the
// child's environment, and the set of live child process groups.
#pragma once

#include <sys/types.h>

#include <uv.h>
#include <memory>

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "config.hpp"
#include "metrics.hpp"
#include "rate_limiter.hpp"
#include "slot_table.hpp"
#include "usage_log.hpp"

namespace codex {

// Live child process groups, so a stopping worker can kill them all.
class ChildGroups {
 public:
  void add(pid_t pgid);
  void remove(pid_t pgid);
  void signalAll(int signal);
  size_t size();

 private:
  std::mutex mutex_;
  std::unordered_set<pid_t> groups_;
};

// The completions running in this worker, each reachable through its loop's wake-up handle, so
// a stopping worker can end them all from its control thread.
class ActiveRuns {
 public:
  void add(uv_async_t* wake);
  void remove(uv_async_t* wake);
  // Wakes every run so it ends its response now; runs that start later end at once.
  void endAll();
  bool ending();

 private:
  std::mutex mutex_;
  std::unordered_set<uv_async_t*> runs_;
  bool ending_ = false;
};

struct WorkerContext {
  WorkerContext(const Config& config_in, SlotTable& slots_in, std::string shim,
                std::vector<std::string> env)
      : config(config_in), slots(slots_in), exec_shim(std::move(shim)), child_env(std::move(env)) {}

  const Config& config;
  SlotTable& slots;
  std::string exec_shim;               // path of codex-exec
  std::vector<std::string> child_env;  // our environment minus secrets, plus CODEX_HOME
  ChildGroups children;
  // Opened once when the worker starts rather than on first use, so its directory exists before
  // the first request and a bad TOKEN_LOG_PATH shows in the start-up log, not per request.
  NdjsonLog usage_log;
  // Shared by every worker of the pool; absent when PROXY_RATE_LIMIT_ENABLED is off.
  std::unique_ptr<RateLimiter> rate_limiter;
  // PROTO_LOG_PATH, open only in development (PROXY_ENV=dev).
  NdjsonLog proto_log;
  // Set by SIGTERM or SIGUSR1: request threads stop accepting and leave after their request.
  std::atomic<bool> draining{false};
  ActiveRuns runs;
  // The pool's shared counters, mapped by the supervisor before it forked this worker.
  PoolMetrics metrics;
};

// The environment a child gets: ours, without the proxy's secrets, with CODEX_HOME set.
std::vector<std::string> childEnvironment(const Config& config, char** environ_in);

}  // namespace codex
