// Shared per-process state of a worker; see worker_context.hpp.
#include "worker_context.hpp"

#include <signal.h>

#include <string_view>

namespace codex {

void ChildGroups::add(pid_t pgid) {
  std::lock_guard lock(mutex_);
  groups_.insert(pgid);
}

void ChildGroups::remove(pid_t pgid) {
  std::lock_guard lock(mutex_);
  groups_.erase(pgid);
}

void ChildGroups::signalAll(int signal) {
  std::lock_guard lock(mutex_);
  for (pid_t pgid : groups_) {
    kill(-pgid, signal);
  }
}

size_t ChildGroups::size() {
  std::lock_guard lock(mutex_);
  return groups_.size();
}

void ActiveRuns::add(uv_async_t* wake) {
  std::lock_guard lock(mutex_);
  runs_.insert(wake);
  if (ending_) {
    uv_async_send(wake);
  }
}

void ActiveRuns::remove(uv_async_t* wake) {
  std::lock_guard lock(mutex_);
  runs_.erase(wake);
}

void ActiveRuns::endAll() {
  std::lock_guard lock(mutex_);
  ending_ = true;
  for (uv_async_t* wake : runs_) {
    uv_async_send(wake);
  }
}

bool ActiveRuns::ending() {
  std::lock_guard lock(mutex_);
  return ending_;
}

std::vector<std::string> childEnvironment(const Config& config, char** environ_in) {
  // Secrets of the gateway itself; a provider key reaches the child only through the
  // documented provider setting, never by inheritance.
  constexpr std::string_view kSecrets[] = {
      "PROXY_API_KEY=", "CODEX_PROVIDER_API_KEY=", "CODEX_HOME="};
  std::vector<std::string> env;

  // With a custom provider, Codex reads the key from the variable its env_key names.
  bool hand_over_key = config.codex_backend == "app-server" && !config.provider_base_url.empty();

  for (char** entry = environ_in; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    bool secret = false;
    for (auto prefix : kSecrets) {
      secret = secret || text.starts_with(prefix);
    }
    if (hand_over_key && text.starts_with("CODEX_PROVIDER_API_KEY=")) {
      secret = false;
    }
    if (!secret) {
      env.emplace_back(text);
    }
  }
  env.push_back("CODEX_HOME=" + config.codex_home);
  return env;
}

}  // namespace codex
