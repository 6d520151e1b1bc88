// A worker process: request threads that each accept on the shared socket and own one libuv
// loop, plus a control thread (main) that alone receives signals.
//
// libfcgi claims SIGTERM for itself and its threads stay blocked in accept() when it fires, and
// libuv needs SIGCHLD delivered to some thread; so every request thread blocks all process
// signals, and the main thread takes them through libuv.
#include <fcgiapp.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>

#include "log.hpp"
#include "pool.hpp"
#include "request_handler.hpp"
#include "worker_context.hpp"

extern char** environ;

namespace codex {
namespace {

constexpr size_t kThreadStack = 256 * 1024;

struct RequestThread {
  WorkerContext* context = nullptr;
  int listen_fd = -1;
  pthread_t thread{};
  std::atomic<bool> in_accept{false};
  std::atomic<bool> done{false};
};

// How a worker stops: accept no more, let running requests finish within the grace period, then
// end the rest (an error frame, [DONE], the child killed) and leave.
struct Drain {
  WorkerContext* context = nullptr;
  std::vector<std::unique_ptr<RequestThread>>* threads = nullptr;
  uv_timer_t wake_timer{};
  uv_timer_t grace_timer{};
  uv_timer_t deadline_timer{};
  bool cut_armed = false;  // SIGTERM's grace and deadline timers are running
  bool accept_closed_logged = false;
};

sigset_t processSignals() {
  sigset_t set;

  sigemptyset(&set);
  for (int signal : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD}) {
    sigaddset(&set, signal);
  }
  return set;
}

void* requestThreadMain(void* arg) {
  auto* self = static_cast<RequestThread*>(arg);
  FCGX_Request request;
  sigset_t wake;

  sigemptyset(&wake);
  sigaddset(&wake, SIGUSR2);
  FCGX_InitRequest(&request, self->listen_fd, 0);
  while (!self->context->draining) {
    // Announced before draining is read again, so the control thread never sees every thread
    // out of accept() while one is about to enter it.
    self->in_accept = true;
    if (self->context->draining) {
      self->in_accept = false;
      break;
    }
    // SIGUSR2 may interrupt accept() only, never a write to a client.
    pthread_sigmask(SIG_UNBLOCK, &wake, nullptr);
    int rc = FCGX_Accept_r(&request);
    pthread_sigmask(SIG_BLOCK, &wake, nullptr);
    self->in_accept = false;
    if (rc < 0) {
      if (self->context->draining) {
        break;
      }
      LogLine("accept failed").with("error", strerror(-rc)).warn();
      struct timespec pause = {0, 10 * 1000 * 1000};  // back off instead of spinning on EMFILE
      nanosleep(&pause, nullptr);
      continue;
    }
    // libfcgi accepts without SOCK_CLOEXEC; codex-exec closes the rest of the race window.
    fcntl(request.ipcFd, F_SETFD, FD_CLOEXEC);
    serveRequest(*self->context, request);
  }
  self->done = true;
  return nullptr;
}

void startThreads(WorkerContext& context, int listen_fd, int64_t count,
                  std::vector<std::unique_ptr<RequestThread>>& threads) {
  pthread_attr_t attr;

  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kThreadStack);
  for (int64_t i = 0; i < count; ++i) {
    auto thread = std::make_unique<RequestThread>();
    thread->context = &context;
    thread->listen_fd = listen_fd;
    if (pthread_create(&thread->thread, &attr, requestThreadMain, thread.get()) != 0) {
      LogLine("cannot start request thread").with("error", strerror(errno)).error();
      break;
    }
    threads.push_back(std::move(thread));
  }
  pthread_attr_destroy(&attr);
}

bool allDone(const Drain& drain) {
  for (const auto& thread : *drain.threads) {
    if (!thread->done) {
      return false;
    }
  }
  return true;
}

// Once no thread is in accept() the worker takes no new request; a rolling reload waits for
// this before it counts the old configuration as gone.
void noteAcceptClosed(Drain& drain) {
  if (drain.accept_closed_logged) {
    return;
  }
  for (const auto& thread : *drain.threads) {
    if (thread->in_accept) {
      return;
    }
  }
  drain.accept_closed_logged = true;
  LogLine("worker stopped accepting")
      .with("requests_running", uint64_t{drain.context->children.size()})
      .info();
}

// libfcgi checks its shutdown flag before accept(), so a thread can miss one wake-up: they are
// repeated until every thread has left.
void wakeThreads(uv_timer_t* timer) {
  auto* drain = static_cast<Drain*>(timer->data);

  if (allDone(*drain)) {
    noteAcceptClosed(*drain);
    LogLine("worker stopped").info();
    _exit(0);
  }
  noteAcceptClosed(*drain);
  for (const auto& thread : *drain->threads) {
    if (!thread->done) {
      pthread_kill(thread->thread, SIGUSR2);
    }
  }
}

// Accept no more; the worker leaves once its last request is done.
void stopAccepting(Drain& drain, int signal) {
  WorkerContext& context = *drain.context;

  if (context.draining.exchange(true)) {
    return;
  }
  LogLine(signal == SIGUSR1 ? "worker retiring" : "worker draining")
      .with("signal", int64_t{signal})
      .with("children", uint64_t{context.children.size()})
      .info();
  FCGX_ShutdownPending();
  uv_timer_start(&drain.wake_timer, wakeThreads, 0, 100);
}

// SIGUSR1, from a rolling reload: open requests run to their own end, however long.
void onRetireSignal(uv_signal_t* handle, int signal) {
  stopAccepting(*static_cast<Drain*>(handle->data), signal);
}

// SIGTERM: open requests get the grace period, then are ended. A retiring worker that is then
// told to stop gets the grace period from that moment.
void onStopSignal(uv_signal_t* handle, int signal) {
  auto* drain = static_cast<Drain*>(handle->data);
  WorkerContext& context = *drain->context;

  stopAccepting(*drain, signal);
  if (drain->cut_armed) {
    return;
  }
  drain->cut_armed = true;
  LogLine("worker ending requests after grace")
      .with("grace_ms", context.config.shutdown_grace_ms)
      .info();
  uv_timer_start(
      &drain->grace_timer,
      [](uv_timer_t* t) { static_cast<Drain*>(t->data)->context->runs.endAll(); },
      static_cast<uint64_t>(std::max<int64_t>(context.config.shutdown_grace_ms, 0)), 0);
  // A run that cannot even end its response in a second is cut with its children.
  uv_timer_start(
      &drain->deadline_timer,
      [](uv_timer_t* t) {
        auto* late = static_cast<Drain*>(t->data);
        LogLine("worker stopped with requests still running").warn();
        late->context->children.signalAll(SIGKILL);
        _exit(0);
      },
      static_cast<uint64_t>(std::max<int64_t>(context.config.shutdown_grace_ms, 0) + 1000), 0);
}

}  // namespace

std::string rateLimitPath(const Config& config) {
  return config.slot_table + ".rate";
}

int64_t threadsPerWorker(const Config& config) {
  if (config.worker_threads > 0) {
    return config.worker_threads;
  }
  // The whole cap in one worker plus room to answer 429, and no more by default: every spawn
  // forks this worker, and each idle thread's stack and memory make every fork dearer.
  int64_t cap = config.guardEnabled() ? config.sse_max_concurrency : 0;
  return std::max<int64_t>(64, cap + 16);
}

namespace {

// The shared files a worker needs; a missing slot table or rate table stops it (exit 3), a
// usage log it cannot open is only reported.
void openShared(const Config& config, WorkerContext& context) {
  if (auto error = context.slots.registerOwner()) {
    LogLine("worker cannot register in slot table").with("error", *error).error();
    _exit(3);
  }
  if (config.rate_limit_enabled) {
    context.rate_limiter = std::make_unique<RateLimiter>();
    if (auto error = RateLimiter::open(rateLimitPath(config), *context.rate_limiter)) {
      LogLine("worker cannot open rate limit table").with("error", *error).error();
      _exit(3);
    }
  }
  if (auto error = NdjsonLog::open(config.token_log_path, context.usage_log)) {
    LogLine("worker cannot open usage log").with("error", *error).error();
  }
  // Development only: it records prompts and answers, which production logs never hold.
  if (config.devEnvironment() && config.log_proto) {
    if (auto error = NdjsonLog::open(config.proto_log_path, context.proto_log)) {
      LogLine("worker cannot open proto log").with("error", *error).error();
    }
  }
}

// The main thread becomes the control thread: it alone takes signals, and SIGCHLD reaching
// libuv here wakes every request loop that has a child.
[[noreturn]] void runControl(Drain& drain) {
  uv_loop_t* loop = uv_default_loop();
  uv_signal_t term, intr, retire;
  sigset_t mine;

  for (uv_timer_t* timer : {&drain.wake_timer, &drain.grace_timer, &drain.deadline_timer}) {
    uv_timer_init(loop, timer);
    timer->data = &drain;
  }
  for (auto [handle, signum] : {std::pair{&term, SIGTERM}, std::pair{&intr, SIGINT}}) {
    uv_signal_init(loop, handle);
    handle->data = &drain;
    uv_signal_start(handle, onStopSignal, signum);
  }
  uv_signal_init(loop, &retire);
  retire.data = &drain;
  uv_signal_start(&retire, onRetireSignal, SIGUSR1);
  sigemptyset(&mine);
  for (int signal : {SIGTERM, SIGINT, SIGUSR1, SIGCHLD}) {
    sigaddset(&mine, signal);
  }
  pthread_sigmask(SIG_UNBLOCK, &mine, nullptr);
  uv_run(loop, UV_RUN_DEFAULT);
  _exit(0);
}

}  // namespace

void runWorker(const Config& config, const PoolOptions& options, int listen_fd,
               const PoolMetrics& metrics) {
  // A worker must not outlive its supervisor.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  sigset_t signals = processSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  SlotTable slots;
  if (auto error = SlotTable::open(config.slot_table, slots)) {
    LogLine("worker cannot open slot table").with("error", *error).error();
    _exit(3);
  }
  auto child_env = childEnvironment(config, environ);
  WorkerContext context(config, slots, options.exec_shim, std::move(child_env));
  context.metrics = metrics;
  openShared(config, context);

  // Without SA_RESTART, so the wake-up interrupts accept() instead of being retried inside it.
  struct sigaction wake {};
  wake.sa_handler = [](int) {
  };
  sigaction(SIGUSR2, &wake, nullptr);
  FCGX_Init();
  std::vector<std::unique_ptr<RequestThread>> threads;
  startThreads(context, listen_fd, threadsPerWorker(config), threads);
  LogLine("worker ready")
      .with("threads", uint64_t{threads.size()})
      .with("slot_owner", int64_t{slots.ownerIndex()})
      .info();
  Drain drain{&context, &threads};
  runControl(drain);
}

}  // namespace codex
