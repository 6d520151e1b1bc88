// One completion's event loop; see completion_run.hpp.
//
// Every callback runs on the request thread's own loop, so writes to nginx block only this
// request, and a slow client stops our reads from the child (its pipe fills, the child waits):
// backpressure without queues.
#include "completion_run.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "codex_binary.hpp"
#include "json_writer.hpp"
#include "log.hpp"
#include "responses.hpp"

namespace codex {
namespace {

template <typename T>
CompletionRun* owner(T* handle) {
  return static_cast<CompletionRun*>(handle->data);
}

int64_t epochMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;

  for (auto& s : strings) {
    out.push_back(s.data());
  }
  out.push_back(nullptr);
  return out;
}

}  // namespace

CompletionRun::CompletionRun(uv_loop_t* loop, WorkerContext& context, FcgiExchange& io,
                             ChildProtocol& protocol, ChildRequest request, CompletionState& state,
                             std::optional<StreamSlot> slot, RunSettings settings)
    : loop_(loop),
      context_(context),
      config_(context.config),
      io_(io),
      protocol_(protocol),
      request_(std::move(request)),
      state_(state),
      slot_(std::move(slot)),
      settings_(std::move(settings)) {}

RunOutcome CompletionRun::run() {
  std::string spawn_error;
  bool stream = state_.spec().stream;

  for (uv_timer_t* timer : timers()) {
    uv_timer_init(loop_, timer);
    timer->data = this;
  }
  uv_async_init(loop_, &shutdown_wake_, [](uv_async_t* a) { owner(a)->onShutdown(); });
  shutdown_wake_.data = this;
  context_.runs.add(&shutdown_wake_);
  spawned_ = spawnChild(spawn_error);
  if (!spawned_) {
    outcome_.end_reason = "spawn_failed";
    LogLine("child could not be started")
        .with("req_id", settings_.request_id)
        .with("error", spawn_error)
        .warn();
    if (stream && io_.sendHead(200)) {
      sendFrames(state_.closingFrames(EndCause::SpawnFailed, spawn_error));
    } else if (!stream) {
      sendError(io_, errors::spawnFailed(spawn_error));
    }
    endResponse("spawn_failed");
  } else {
    if (stream && io_.sendHead(200)) {
      sendFrames(state_.openingFrames());
    }
    startWatching();
  }
  maybeFinish();
  uv_run(loop_, UV_RUN_DEFAULT);
  // The loop only stops early if a path above forgot a handle: never leave one behind.
  endResponse(outcome_.end_reason);
  closeAll();
  uv_run(loop_, UV_RUN_DEFAULT);
  return outcome_;
}

// The working directory is created on demand; if that fails the child starts in ours.
bool CompletionRun::prepareWorkdir() {
  std::error_code ec;

  std::filesystem::create_directories(config_.codex_workdir, ec);
  if (ec) {
    LogLine("cannot create child working directory")
        .with("req_id", settings_.request_id)
        .with("path", config_.codex_workdir)
        .with("error", ec.message())
        .warn();
  }
  return !ec;
}

// stdin for the request, stdout for events, stderr for the log: all pipes on this loop.
void CompletionRun::preparePipes(uv_stdio_container_t (&stdio)[3]) {
  Pipe* pipes[] = {&stdin_, &stdout_, &stderr_};

  for (int i = 0; i < 3; ++i) {
    uv_pipe_init(loop_, &pipes[i]->handle, 0);
    pipes[i]->handle.data = this;
    int direction = i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE;  // as the child sees it
    stdio[i].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | direction);
    stdio[i].data.stream = reinterpret_cast<uv_stream_t*>(&pipes[i]->handle);
  }
}

bool CompletionRun::spawnChild(std::string& error) {
  auto binary = resolveBinary(config_.codex_bin, error);
  if (!binary) {
    return false;
  }
  std::vector<std::string> args = {context_.exec_shim, std::to_string(getpid()), *binary};
  for (auto& arg : protocol_.arguments(request_)) {
    args.push_back(std::move(arg));
  }
  std::vector<std::string> env = context_.child_env;
  env.push_back("CODEX_GATEWAY_REQUEST_ID=" + settings_.request_id);
  auto argv = pointers(args);
  auto envp = pointers(env);
  uv_stdio_container_t stdio[3];
  uv_process_options_t options{};

  preparePipes(stdio);
  options.file = argv[0];
  options.args = argv.data();
  options.env = envp.data();
  options.cwd = prepareWorkdir() ? config_.codex_workdir.c_str() : nullptr;
  // Detached: the child leads its own process group, which we can kill as a whole.
  options.flags = UV_PROCESS_DETACHED;
  options.stdio_count = 3;
  options.stdio = stdio;
  options.exit_cb = [](uv_process_t* p, int64_t status, int signal) {
    owner(p)->onExit(status, signal);
  };
  process_.data = this;
  int rc = uv_spawn(loop_, &process_, &options);
  if (rc != 0) {
    error = fmt::format("spawn {} {}", config_.codex_bin, uv_err_name(rc));
    closeHandle(reinterpret_cast<uv_handle_t*>(&process_));  // libuv initialised it anyway
    for (Pipe* pipe : {&stdin_, &stdout_, &stderr_}) {
      closeHandle(reinterpret_cast<uv_handle_t*>(&pipe->handle));
    }
    return false;
  }
  onSpawned();
  return true;
}

void CompletionRun::onSpawned() {
  spawned_at_ = uv_hrtime();
  outcome_.child_pid = process_.pid;
  context_.children.add(process_.pid);
  if (slot_) {
    slot_->setChildGroup(process_.pid);
  }
  std::string opening = protocol_.openingInput(request_);
  logProto("submission", opening);
  writeStdin(std::move(opening));
}

void CompletionRun::startWatching() {
  // A buffer lives only from one read's allocation to its callback (the framer keeps any partial
  // line), so an open stream that is waiting on its child holds none; most of the time, that is.
  auto alloc = [](uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* pipe = reinterpret_cast<Pipe*>(handle);
    pipe->buffer.reset(new char[pipe->size]);
    *buf = uv_buf_init(pipe->buffer.get(), pipe->size);
  };
  stdout_.size = 16384;
  stderr_.size = 2048;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&stdout_.handle), alloc,
                [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
                  owner(s)->onStdout(n, buf);
                  reinterpret_cast<Pipe*>(s)->buffer.reset();
                });
  uv_read_start(reinterpret_cast<uv_stream_t*>(&stderr_.handle), alloc,
                [](uv_stream_t* s, ssize_t n, const uv_buf_t*) {
                  owner(s)->onStderr(n);
                  reinterpret_cast<Pipe*>(s)->buffer.reset();
                });
  stdout_open_ = stderr_open_ = true;

  // uv_poll_init makes the fd non-blocking; libfcgi's blocking writes need it back as it was.
  int fd = io_.connectionFd();
  int flags = fcntl(fd, F_GETFL);
  if (uv_poll_init(loop_, &connection_, fd) == 0) {
    fcntl(fd, F_SETFL, flags);
    connection_.data = this;
    watching_connection_ = true;
    uv_poll_start(&connection_, UV_READABLE | UV_DISCONNECT,
                  [](uv_poll_t* p, int, int) { owner(p)->clientGone(); });
  }

  bool stream = state_.spec().stream;
  startTimer(request_timer_, config_.timeout_ms, [](uv_timer_t* t) {
    auto* self = owner(t);
    if (!self->response_ended_) {
      if (self->state_.spec().stream) {
        self->sendFrames(self->state_.closingFrames(EndCause::RequestTimeout, ""));
        self->endResponse("request_timeout");
      } else {
        self->endWithError(errors::requestTimeout(), "request_timeout");
      }
    }
    // Past the deadline a child gets no grace: Codex waits forever on an upstream that never
    // answers, so it is asked to interrupt and then killed.
    self->writeStdin(self->protocol_.interruptInput());
    self->terminateChild(SIGKILL);
  });
  // Repeating, so uv_timer_again() can push it back on every read.
  startTimer(
      idle_timer_, stream ? config_.stream_idle_timeout_ms : config_.proto_idle_ms,
      [](uv_timer_t* t) { owner(t)->onIdle(); }, true);
  if (stream && settings_.keepalive && config_.keepalive_ms > 0) {
    startTimer(
        keepalive_timer_, config_.keepalive_ms,
        [](uv_timer_t* t) { owner(t)->sendFrames(fmt::format(": keepalive {}\n\n", epochMs())); },
        true);
  }
  if (!stream && state_.spec().route == Route::Chat) {
    startTimer(truncate_timer_, config_.dev_truncate_after_ms,
               [](uv_timer_t* t) { owner(t)->stopChild(); });
  }
}

void CompletionRun::startTimer(uv_timer_t& timer, int64_t ms, uv_timer_cb callback, bool repeat) {
  if (ms > 0) {
    uv_timer_start(&timer, callback, static_cast<uint64_t>(ms), repeat ? ms : 0);
  }
}

void CompletionRun::onStdout(ssize_t nread, const uv_buf_t* buf) {
  if (nread > 0) {
    if (spawned_at_ != 0) {
      context_.metrics.firstByte(static_cast<double>(uv_hrtime() - spawned_at_) / 1e9);
      spawned_at_ = 0;
    }
    if (!idle_fired_) {
      uv_timer_again(&idle_timer_);
    }
    // The frames of every line in one read leave in one write: they arrived together, so
    // holding the first until the last is mapped delays nothing, and saves a system call each.
    batching_frames_ = true;
    framer_.feed(std::string_view(buf->base, static_cast<size_t>(nread)),
                 [this](std::string_view line) { onLine(line); });
    batching_frames_ = false;
    if (!response_ended_ && !io_.flush()) {
      clientGone();
    }
  } else if (nread < 0) {
    stdout_open_ = false;
    closeHandle(reinterpret_cast<uv_handle_t*>(&stdout_.handle));
    maybeFinish();
  }
}

void CompletionRun::onStderr(ssize_t nread) {
  if (nread > 0) {
    if (!state_.spec().stream && !idle_fired_) {
      uv_timer_again(&idle_timer_);  // the non-stream idle timer counts any output
    }
    std::string_view text(stderr_.buffer.get(), static_cast<size_t>(nread));
    logProto("stderr", text);
    stderr_tail_.append(text.substr(text.size() > 1024 ? text.size() - 1024 : 0));
    if (stderr_tail_.size() > 2048) {
      stderr_tail_.erase(0, stderr_tail_.size() - 1024);
    }
  } else if (nread < 0) {
    stderr_open_ = false;
    closeHandle(reinterpret_cast<uv_handle_t*>(&stderr_.handle));
    maybeFinish();
  }
}

void CompletionRun::onLine(std::string_view line) {
  std::string reply;
  auto event = protocol_.parseLine(line, reply);

  if (!reply.empty()) {
    writeStdin(std::move(reply));
  }
  logProto(event ? "event" : "stdout", line);  // an unparsable line is kept as raw output
  if (!event) {
    if (config_.debug_proto) {
      LogLine("unparsable child line")
          .with("req_id", settings_.request_id)
          .with("line", line)
          .debug();
    }
    return;
  }
  if (response_ended_) {
    // The client is gone or answered; the rest is drained. A child that finishes its task now
    // is let go: an app-server would otherwise wait for more turns.
    using Kind = ChildEvent::Kind;
    if (event->kind == Kind::TaskComplete || event->kind == Kind::Error) {
      stopChild();
    }
    return;
  }
  std::string frames;
  bool ends = state_.apply(*event, frames);

  sendFrames(frames);
  if (!ends && !response_ended_) {
    followToolAction();
  }
  if (!ends || response_ended_) {
    return;
  }
  if (state_.error()) {
    LogLine("child reported an error")
        .with("req_id", settings_.request_id)
        .with("error", state_.error()->message)
        .warn();
    if (!state_.spec().stream) {
      sendError(io_, *state_.error());
    }
    endResponse("backend_error");
  } else {
    if (!state_.spec().stream) {
      sendJson(io_, 200, state_.body());
    }
    endResponse("done");
  }
  stopChild();  // a finished child has nothing more to say
}

void CompletionRun::logProto(std::string_view kind, std::string_view data) {
  if (!context_.proto_log.isOpen()) {
    return;
  }
  JsonWriter w;
  w.beginObject().field("ts", epochMs()).field("req_id", settings_.request_id);
  w.field("route", settings_.route).field("mode", state_.spec().stream ? "stream" : "nonstream");
  w.field("kind", kind).field("data", data).endObject();
  context_.proto_log.appendLine(w.str() + "\n");
}

void CompletionRun::followToolAction() {
  switch (state_.toolAction()) {
    case ToolAction::Cut:
      cutAfterTools();
      break;
    case ToolAction::StartGrace:
      // Zero is a valid grace: the cut then happens on the loop's next turn.
      uv_timer_start(
          &tool_timer_, [](uv_timer_t* t) { owner(t)->cutAfterTools(); },
          static_cast<uint64_t>(std::max<int64_t>(config_.stop_after_tools_grace_ms, 0)), 0);
      break;
    case ToolAction::None:
      break;
  }
}

void CompletionRun::cutAfterTools() {
  if (response_ended_) {
    return;
  }
  sendFrames(state_.cutFrames());
  endResponse("tool_cut");
  stopChild();
}

void CompletionRun::onExit(int64_t exit_status, int term_signal) {
  child_exited_ = true;
  outcome_.exit_status = exit_status;
  outcome_.term_signal = term_signal;
  context_.children.remove(process_.pid);
  // Whatever the child left in its process group goes with it.
  kill(-process_.pid, SIGKILL);
  uv_timer_stop(&kill_timer_);
  closeHandle(reinterpret_cast<uv_handle_t*>(&process_));
  maybeFinish();
}

// The worker is stopping and its grace period is over: the client hears why, the child goes.
void CompletionRun::onShutdown() {
  if (!response_ended_) {
    if (state_.spec().stream) {
      sendFrames(state_.closingFrames(EndCause::Shutdown, ""));
      endResponse("shutdown");
    } else {
      endWithError(errors::shuttingDown(), "shutdown");
    }
  }
  terminateChild(SIGKILL);
}

void CompletionRun::onIdle() {
  uv_timer_stop(&idle_timer_);
  idle_fired_ = true;
  if (!state_.spec().stream && !response_ended_) {
    endWithError(errors::idleTimeout(), "idle_timeout");
  }
  // A stream ends through the normal exit path once the child is gone.
  stopChild();
}

void CompletionRun::sendFrames(const std::string& frames) {
  if (response_ended_ || frames.empty()) {
    return;
  }
  if (!io_.send(frames, !batching_frames_)) {
    clientGone();
  }
}

void CompletionRun::endResponse(std::string_view reason) {
  if (response_ended_) {
    return;
  }
  response_ended_ = true;
  outcome_.end_reason = reason;
  for (uv_timer_t* timer :
       {&keepalive_timer_, &request_timer_, &idle_timer_, &truncate_timer_, &tool_timer_}) {
    uv_timer_stop(timer);
  }
  releaseSlot();
  if (watching_connection_) {
    watching_connection_ = false;
    uv_poll_stop(&connection_);
    closeHandle(reinterpret_cast<uv_handle_t*>(&connection_));
  }
  if (state_.spec().stream) {
    context_.metrics.streamEnded(streamEndFor(reason));
  }
  // Ends the HTTP response now, while the child may still be shutting down.
  io_.finish();
}

void CompletionRun::endWithError(const ApiError& error, std::string_view reason) {
  sendError(io_, error);
  endResponse(reason);
}

void CompletionRun::clientGone() {
  if (response_ended_) {
    return;
  }
  bool kill = config_.kill_on_disconnect;
  uint64_t request_left = uv_timer_get_due_in(&request_timer_);

  endResponse("client_gone");
  if (kill) {
    stopChild();
  } else if (!child_exited_) {
    // The child may finish on its own, but never outlives the request deadline, nor stays
    // silent longer than the idle timeout.
    if (request_left > 0) {
      uv_timer_start(
          &request_timer_, [](uv_timer_t* t) { owner(t)->terminateChild(SIGKILL); }, request_left,
          0);
    }
    uv_timer_again(&idle_timer_);
  }
}

void CompletionRun::releaseSlot() {
  if (!slot_ || !slot_->held()) {
    return;
  }
  auto [before, after] = slot_->release();

  LogLine("stream slot released")
      .with("scope", "sse_guard")
      .with("req_id", settings_.request_id)
      .with("route", settings_.route)
      .with("outcome", "released")
      .with("before", int64_t{before})
      .with("after", int64_t{after})
      .with("limit", config_.sse_max_concurrency)
      .info();
}

// A child that ends badly without completing its task is a backend failure, not an answer: a
// non-zero exit, or a signal we did not send.
std::string CompletionRun::childFailure() const {
  if (!spawned_ || state_.taskComplete()) {
    return "";
  }
  if (outcome_.term_signal != 0 && !signalled_) {
    return fmt::format("backend was killed by signal {}", outcome_.term_signal);
  }
  if (outcome_.term_signal == 0 && outcome_.exit_status != 0) {
    return fmt::format("backend exited with status {}", outcome_.exit_status);
  }
  return "";
}

// The gentle way first: an app-server child ends when its stdin closes, others on SIGTERM;
// either way SIGKILL follows after the grace period.
void CompletionRun::stopChild() {
  if (!spawned_ || child_exited_) {
    return;
  }
  if (!protocol_.endsOnStdinClose()) {
    terminateChild(SIGTERM);
    return;
  }
  // Closing stdin ends an app-server at once, mid-turn included, and it sends nothing more.
  signalled_ = true;
  closeHandle(reinterpret_cast<uv_handle_t*>(&stdin_.handle));
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&kill_timer_))) {
    uv_timer_start(
        &kill_timer_, [](uv_timer_t* t) { owner(t)->terminateChild(SIGKILL); },
        static_cast<uint64_t>(std::max<int64_t>(config_.kill_grace_ms, 1)), 0);
  }
}

void CompletionRun::terminateChild(int signal) {
  if (!spawned_ || child_exited_) {
    return;
  }
  signalled_ = true;
  kill(-process_.pid, signal);
  if (signal != SIGKILL && !uv_is_active(reinterpret_cast<uv_handle_t*>(&kill_timer_))) {
    uv_timer_start(
        &kill_timer_, [](uv_timer_t* t) { owner(t)->terminateChild(SIGKILL); },
        static_cast<uint64_t>(std::max<int64_t>(config_.kill_grace_ms, 1)), 0);
  }
}

void CompletionRun::maybeFinish() {
  bool child_done = !spawned_ || child_exited_;

  if (!response_ended_ && child_done && !stdout_open_) {
    std::string failure = childFailure();
    if (!failure.empty()) {
      LogLine("child failed")
          .with("req_id", settings_.request_id)
          .with("error", failure)
          .with("stderr_tail", stderr_tail_)
          .warn();
      if (state_.spec().stream) {
        sendFrames(state_.closingFrames(EndCause::ChildFailed, failure));
      } else {
        sendError(io_, errors::backend(failure));
      }
      endResponse("child_failed");
    } else if (state_.spec().stream) {
      auto cause = idle_fired_ ? EndCause::StreamIdle : EndCause::ChildExited;
      sendFrames(state_.closingFrames(cause, ""));
      endResponse(idle_fired_ ? "idle_timeout" : "child_exit");
    } else {
      sendJson(io_, 200, state_.body());
      endResponse("child_exit");
    }
  }
  if (response_ended_ && child_done && !stdout_open_ && !stderr_open_) {
    closeAll();
  }
}

void CompletionRun::closeAll() {
  // Unregistered first, so the control thread never wakes a handle that is closing.
  context_.runs.remove(&shutdown_wake_);
  closeHandle(reinterpret_cast<uv_handle_t*>(&shutdown_wake_));
  for (Pipe* pipe : {&stdin_, &stdout_, &stderr_}) {
    closeHandle(reinterpret_cast<uv_handle_t*>(&pipe->handle));
  }
  closeHandle(reinterpret_cast<uv_handle_t*>(&process_));
  closeHandle(reinterpret_cast<uv_handle_t*>(&connection_));
  for (uv_timer_t* timer : timers()) {
    closeHandle(reinterpret_cast<uv_handle_t*>(timer));
  }
}

std::array<uv_timer_t*, 6> CompletionRun::timers() {
  return {&request_timer_, &idle_timer_,     &keepalive_timer_,
          &kill_timer_,    &truncate_timer_, &tool_timer_};
}

void CompletionRun::writeStdin(std::string data) {
  if (data.empty() || uv_is_closing(reinterpret_cast<uv_handle_t*>(&stdin_.handle))) {
    return;
  }
  struct Write {
    uv_write_t request;
    std::string data;
  };
  auto* write = new Write{{}, std::move(data)};
  uv_buf_t buf = uv_buf_init(write->data.data(), write->data.size());

  int rc = uv_write(&write->request, reinterpret_cast<uv_stream_t*>(&stdin_.handle), &buf, 1,
                    [](uv_write_t* request, int) {
                      delete reinterpret_cast<Write*>(request);  // request is Write's first member
                    });
  if (rc != 0) {
    delete write;
  }
}

void CompletionRun::closeHandle(uv_handle_t* handle) {
  if (handle->loop != nullptr && !uv_is_closing(handle)) {
    uv_close(handle, nullptr);
  }
}

}  // namespace codex
