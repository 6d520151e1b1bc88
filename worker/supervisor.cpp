// The supervisor: owns the listening socket and the slot table, forks the workers, replaces a
// worker that dies and frees the stream slots it held, rolls the workers onto a fresh
// configuration on SIGHUP, and stops the pool on SIGTERM/SIGINT.
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

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <tuple>

#include "log.hpp"
#include "pool.hpp"
#include "slot_table.hpp"

namespace codex {
namespace {

using Clock = std::chrono::steady_clock;

// A burst of new streams arrives faster than busy workers accept; with a short queue nginx's
// connect() fails with EAGAIN and the client gets a 502 for what should be a wait or a 429. The
// kernel caps this at net.core.somaxconn.
constexpr int kBacklog = SOMAXCONN;
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

struct WorkerProcess {
  Clock::time_point started;
  // Told to finish its requests and leave by a reload; it is not replaced when it exits.
  bool retiring = false;
};

class Supervisor {
 public:
  Supervisor(const Config& config, const ConfigLoader& load, const PoolOptions& options)
      : config_(config), load_(load), options_(options) {}

  int run();

 private:
  void spawnWorker();
  void reapWorkers();
  void respawnDue();
  void reload();
  Clock::duration respawnDelay(Clock::duration lived);
  void countWorkers();
  int stop(int signal);

  Config config_;
  const ConfigLoader& load_;
  const PoolOptions& options_;
  int listen_fd_ = -1;
  SlotTable slots_;
  PoolMetrics metrics_;
  std::map<pid_t, WorkerProcess> workers_;
  std::vector<Clock::time_point> respawns_;  // when each pending replacement may start
  int quick_deaths_ = 0;                     // workers in a row that died young
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
  if (!metrics_.create()) {
    LogLine("cannot map metrics page; /metrics will show gauges only")
        .with("error", strerror(errno))
        .warn();
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
      reload();
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
    runWorker(config_, options_, listen_fd_, metrics_);
  }
  workers_[pid] = {Clock::now(), false};
  countWorkers();
}

void Supervisor::countWorkers() {
  if (MetricsPage* page = metrics_.page()) {
    auto current = std::count_if(workers_.begin(), workers_.end(),
                                 [](const auto& worker) { return !worker.second.retiring; });
    page->workers.store(current);
  }
}

// The new workers start before the old ones stop accepting, so the socket always has takers; the
// old ones finish their open requests in their own time. Both share the slot table, so the cap
// holds across the two generations throughout.
void Supervisor::reload() {
  Config next;
  MetricsPage* page = metrics_.page();

  if (auto error = load_(next)) {
    LogLine("reload refused; keeping the running configuration").with("error", *error).error();
    if (page != nullptr) {
      page->reloads_failed.fetch_add(1);
    }
    return;
  }
  // These name what the pool itself holds open; changing them takes a restart.
  for (auto [name, kept, wanted] :
       {std::tuple{"PROXY_RUNTIME_DIR", &config_.runtime_dir, &next.runtime_dir},
        std::tuple{"PROXY_FCGI_SOCKET", &config_.fcgi_socket, &next.fcgi_socket},
        std::tuple{"PROXY_SLOT_TABLE", &config_.slot_table, &next.slot_table}}) {
    if (*kept != *wanted) {
      LogLine("reload keeps a setting that needs a restart")
          .with("setting", name)
          .with("running", *kept)
          .with("requested", *wanted)
          .warn();
      *wanted = *kept;
    }
  }
  config_ = next;
  std::vector<pid_t> old;
  for (auto& [pid, worker] : workers_) {
    if (!worker.retiring) {
      worker.retiring = true;
      old.push_back(pid);
    }
  }
  // Pending replacements belonged to the old generation; the new one starts complete.
  respawns_.clear();
  quick_deaths_ = 0;
  for (int64_t i = 0; i < config_.workers; ++i) {
    spawnWorker();
  }
  for (pid_t pid : old) {
    kill(pid, SIGUSR1);
  }
  if (page != nullptr) {
    page->reloads_ok.fetch_add(1);
  }
  LogLine("pool reloading")
      .with("workers", config_.workers)
      .with("retiring", uint64_t{old.size()})
      .with("threads_per_worker", threadsPerWorker(config_))
      .with("stream_limit", config_.sse_max_concurrency)
      .info();
}

void Supervisor::reapWorkers() {
  int status = 0;
  pid_t pid;

  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    auto found = workers_.find(pid);
    if (found == workers_.end()) {
      continue;
    }
    auto lived = Clock::now() - found->second.started;
    bool retired = found->second.retiring;
    workers_.erase(found);
    countWorkers();
    // Freed at once rather than on the next acquire that finds the table full.
    uint32_t freed = slots_.reclaimProcess(pid);
    LogLine line(retired ? "retired worker exited" : "worker exited");
    line.with("worker_pid", int64_t{pid})
        .with("exit_code", int64_t{WIFEXITED(status) ? WEXITSTATUS(status) : -1})
        .with("signal", int64_t{WIFSIGNALED(status) ? WTERMSIG(status) : 0})
        .with("slots_freed", int64_t{freed});
    if (retired) {
      line.info();
    } else {
      line.warn();
      respawns_.push_back(Clock::now() + respawnDelay(lived));
    }
  }
}

// A worker that dies young is replaced after a delay that doubles with each young death in a
// row (0.1 s up to 30 s), so a worker that cannot start does not spin; one that lived a while
// resets the count.
Clock::duration Supervisor::respawnDelay(Clock::duration lived) {
  using std::chrono::milliseconds;

  quick_deaths_ = lived < std::chrono::seconds(10) ? quick_deaths_ + 1 : 0;
  if (quick_deaths_ == 0) {
    if (MetricsPage* page = metrics_.page()) {
      page->young_deaths.store(0);
      page->last_respawn_delay_ms.store(0);
    }
    return Clock::duration(0);
  }
  auto delay = std::min<milliseconds>(milliseconds(100 << std::min(quick_deaths_ - 1, 9)),
                                      std::chrono::seconds(30));
  if (MetricsPage* page = metrics_.page()) {
    page->young_deaths.store(quick_deaths_);
    page->last_respawn_delay_ms.store(delay.count());
  }
  if (quick_deaths_ >= 5) {
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
      if (MetricsPage* page = metrics_.page()) {
        page->worker_restarts.fetch_add(1);
      }
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

int runSupervisor(const Config& config, const ConfigLoader& load, const PoolOptions& options) {
  Supervisor supervisor(config, load, options);
  return supervisor.run();
}

}  // namespace codex
