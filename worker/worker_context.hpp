// What every request thread of a worker process shares: configuration, the slot table, the
// child's environment, and the set of live child process groups.
#pragma once

#include <sys/types.h>

#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "config.hpp"
#include "slot_table.hpp"

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

struct WorkerContext {
  const Config& config;
  SlotTable& slots;
  std::string exec_shim;               // path of codex-exec
  std::vector<std::string> child_env;  // our environment minus secrets, plus CODEX_HOME
  ChildGroups children;
};

// The environment a child gets: ours, without the proxy's secrets, with CODEX_HOME set.
std::vector<std::string> childEnvironment(const Config& config, char** environ_in);

}  // namespace codex
