// The supervisor: owns the listening socket and the slot table, forks the workers, replaces a
// worker that dies and frees the stream slots it held, and stops the pool on SIGTERM/SIGINT.
//
// It runs no request code and has a single thread, so fork() is safe, and it waits for signals
// synchronously instead of handling them asynchronously.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "log.hpp"
#include "pool.hpp"
#include "slot_table.hpp"

namespace codex {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kBacklog = 128;
// Beyond the workers' own grace period: time for them to end their last responses.
constexpr auto kStopDeadline = std::chrono::seconds(3);

std::optional<std::string> listenOn(const std::string& path, int& fd_out) {
  sockaddr_un address{};
  if (path.size() >= sizeof(address.sun_path)) {
    return "socket path too long: " + path;
  }
  address.sun_family = AF_UNIX;
  memcpy(address.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  // Never steal the path from a live pool: only a socket nobody answers on is removed.
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    close(fd);
    return "another pool is already listening on " + path;
  }
  unlink(path.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      chmod(path.c_str(), 0660) != 0 || listen(fd, kBacklog) != 0) {
    std::string error = "cannot listen on " + path + ": " + strerror(errno);
    close(fd);
    return error;
  }
  fd_out = fd;
  return std::nullopt;
}

class Supervisor {
 public:
  Supervisor(const Config& config, const PoolOptions& options)
      : config_(config), options_(options) {}

  int run();

 private:
  void spawnWorker();
  void reapWorkers();
  void respawnDue();
  Clock::duration respawnDelay(Clock::duration lived);
  int stop(int signal);

  const Config& config_;
  const PoolOptions& options_;
  int listen_fd_ = -1;
  SlotTable slots_;
  std::map<pid_t, Clock::time_point> workers_;  // pid -> start time
  std::vector<Clock::time_point> respawns_;     // when each pending replacement may start
  int quick_deaths_ = 0;                        // workers in a row that died young
};

int Supervisor::run() {
  std::error_code ec;
  std::filesystem::create_directories(config_.runtime_dir, ec);
  if (auto error = listenOn(config_.fcgi_socket, listen_fd_)) {
    LogLine("supervisor cannot start").with("error", *error).error();
    return 1;
  }
  if (auto error = SlotTable::open(config_.slot_table, slots_)) {
    LogLine("supervisor cannot open slot table").with("error", *error).error();
    return 1;
  }
  // Slots left by a pool that died without cleaning up.
  uint32_t stale = slots_.reclaimDead();
  LogLine("slot table attached")
      .with("path", config_.slot_table)
      .with("stale_slots_freed", int64_t{stale})
      .info();

  sigset_t signals;
  sigemptyset(&signals);
  for (int signal : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) {
    sigaddset(&signals, signal);
  }
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  for (int64_t i = 0; i < config_.workers; ++i) {
    spawnWorker();
  }
  LogLine("pool ready")
      .with("socket", config_.fcgi_socket)
      .with("workers", config_.workers)
      .with("threads_per_worker", threadsPerWorker(config_))
      .with("stream_limit", config_.sse_max_concurrency)
      .info();

  for (;;) {
    timespec tick = {0, 100 * 1000 * 1000};
    int signal = sigtimedwait(&signals, nullptr, &tick);
    if (signal == SIGTERM || signal == SIGINT) {
      return stop(signal);
    }
    if (signal == SIGHUP) {
      // TODO(#6): roll the workers to reload configuration.
      LogLine("SIGHUP ignored: reload is not supported yet").warn();
    }
    reapWorkers();
    respawnDue();
  }
}

void Supervisor::spawnWorker() {
  pid_t pid = fork();

  if (pid < 0) {
    LogLine("cannot fork worker").with("error", strerror(errno)).error();
    respawns_.push_back(Clock::now() + std::chrono::seconds(1));
    return;
  }
  if (pid == 0) {
    runWorker(config_, options_, listen_fd_);
  }
  workers_[pid] = Clock::now();
}

void Supervisor::reapWorkers() {
  int status = 0;
  pid_t pid;

  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    auto found = workers_.find(pid);
    if (found == workers_.end()) {
      continue;
    }
    auto lived = Clock::now() - found->second;
    workers_.erase(found);
    // Freed at once rather than on the next acquire that finds the table full.
    uint32_t freed = slots_.reclaimProcess(pid);
    LogLine("worker exited")
        .with("worker_pid", int64_t{pid})
        .with("exit_code", int64_t{WIFEXITED(status) ? WEXITSTATUS(status) : -1})
        .with("signal", int64_t{WIFSIGNALED(status) ? WTERMSIG(status) : 0})
        .with("slots_freed", int64_t{freed})
        .warn();
    respawns_.push_back(Clock::now() + respawnDelay(lived));
  }
}

// A worker that dies young is replaced after a delay that doubles with each young death in a
// row (0.1 s up to 30 s), so a worker that cannot start does not spin; one that lived a while
// resets the count.
Clock::duration Supervisor::respawnDelay(Clock::duration lived) {
  using std::chrono::milliseconds;

  quick_deaths_ = lived < std::chrono::seconds(10) ? quick_deaths_ + 1 : 0;
  if (quick_deaths_ == 0) {
    return Clock::duration(0);
  }
  auto delay = std::min<milliseconds>(milliseconds(100 << std::min(quick_deaths_ - 1, 9)),
                                      std::chrono::seconds(30));
  if (quick_deaths_ >= 5) {
    // TODO(#6): count restarts and crash loops in the metrics too.
    LogLine("workers are crash-looping")
        .with("deaths_in_a_row", int64_t{quick_deaths_})
        .with("next_start_ms", static_cast<int64_t>(delay.count()))
        .error();
  }
  return delay;
}

void Supervisor::respawnDue() {
  auto now = Clock::now();

  for (auto it = respawns_.begin(); it != respawns_.end();) {
    if (*it <= now) {
      it = respawns_.erase(it);
      spawnWorker();
    } else {
      ++it;
    }
  }
}

int Supervisor::stop(int signal) {
  LogLine("pool stopping")
      .with("signal", int64_t{signal})
      .with("workers", uint64_t{workers_.size()})
      .info();
  // New connections fail at once (nginx answers 502 and may retry elsewhere) instead of queueing
  // behind workers that no longer accept; the socket itself is never shut down, which would
  // stop the workers' in-flight exchanges too.
  unlink(config_.fcgi_socket.c_str());
  close(listen_fd_);
  for (auto& [pid, started] : workers_) {
    kill(pid, SIGTERM);
  }
  auto deadline =
      Clock::now() + std::chrono::milliseconds(config_.shutdown_grace_ms) + kStopDeadline;
  sigset_t child;
  sigemptyset(&child);
  sigaddset(&child, SIGCHLD);
  while (!workers_.empty() && Clock::now() < deadline) {
    pid_t pid = waitpid(-1, nullptr, WNOHANG);
    if (pid > 0) {
      slots_.reclaimProcess(pid);
      workers_.erase(pid);
      continue;
    }
    timespec tick = {0, 50 * 1000 * 1000};
    sigtimedwait(&child, nullptr, &tick);
  }
  for (auto& [pid, started] : workers_) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    slots_.reclaimProcess(pid);
  }
  LogLine("pool stopped").info();
  return 0;
}

}  // namespace

int runSupervisor(const Config& config, const PoolOptions& options) {
  Supervisor supervisor(config, options);
  return supervisor.run();
}

}  // namespace codex
