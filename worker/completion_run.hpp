// Runs one completion: spawns the child with libuv, relays its events to the client as JSON or
// SSE, and watches the client, the child and the timers until every one of them has ended.
#pragma once

#include <uv.h>

#include <array>
#include <memory>
#include <optional>
#include <string>

#include "child_protocol.hpp"
#include "completion_state.hpp"
#include "fcgi_exchange.hpp"
#include "line_framer.hpp"
#include "slot_table.hpp"
#include "worker_context.hpp"

namespace codex {

struct RunOutcome {
  std::string end_reason = "done";  // done, client_gone, child_exit, backend_error, ...
  int64_t exit_status = -1;
  int term_signal = 0;
  pid_t child_pid = 0;
};

struct RunSettings {
  std::string request_id;
  std::string route;  // for guard log lines
  bool keepalive = true;
};

class CompletionRun {
 public:
  CompletionRun(uv_loop_t* loop, WorkerContext& context, FcgiExchange& io, ChildProtocol& protocol,
                ChildRequest request, CompletionState& state, std::optional<StreamSlot> slot,
                RunSettings settings);
  CompletionRun(const CompletionRun&) = delete;
  CompletionRun& operator=(const CompletionRun&) = delete;

  // Returns when the response has ended and the child is gone.
  RunOutcome run();

 private:
  // The handle comes first so libuv callbacks can find the Pipe from the handle.
  struct Pipe {
    uv_pipe_t handle;
    std::unique_ptr<char[]> buffer;  // only during a read; never for stdin
    size_t size = 0;
  };

  bool spawnChild(std::string& error);
  bool prepareWorkdir();
  void preparePipes(uv_stdio_container_t (&stdio)[3]);
  void onSpawned();
  void startWatching();
  void startTimer(uv_timer_t& timer, int64_t ms, uv_timer_cb callback, bool repeat = false);

  void onStdout(ssize_t nread, const uv_buf_t* buf);
  void onStderr(ssize_t nread);
  void onLine(std::string_view line);
  void onExit(int64_t exit_status, int term_signal);
  void onIdle();
  void onShutdown();
  void followToolAction();
  void logProto(std::string_view kind, std::string_view data);
  void cutAfterTools();

  void sendFrames(const std::string& frames);
  void endResponse(std::string_view reason);
  void endWithError(const ApiError& error, std::string_view reason);
  void clientGone();
  void releaseSlot();
  void terminateChild(int signal);
  void stopChild();
  std::string childFailure() const;
  void maybeFinish();
  void closeAll();
  std::array<uv_timer_t*, 6> timers();
  void writeStdin(std::string data);
  void closeHandle(uv_handle_t* handle);

  uv_loop_t* loop_;
  WorkerContext& context_;
  const Config& config_;
  FcgiExchange& io_;
  ChildProtocol& protocol_;
  ChildRequest request_;
  CompletionState& state_;
  std::optional<StreamSlot> slot_;
  RunSettings settings_;
  RunOutcome outcome_;
  LineFramer framer_;

  uv_process_t process_{};
  Pipe stdin_{};
  Pipe stdout_{};
  Pipe stderr_{};
  uv_poll_t connection_{};
  uv_timer_t request_timer_{};
  uv_timer_t idle_timer_{};
  uv_timer_t keepalive_timer_{};
  uv_timer_t kill_timer_{};
  uv_timer_t truncate_timer_{};
  uv_timer_t tool_timer_{};
  uv_async_t shutdown_wake_{};  // the worker's control thread ends this run through it

  uint64_t spawned_at_ = 0;  // uv_hrtime() at spawn, until the child's first byte is counted
  bool spawned_ = false;
  bool child_exited_ = false;
  bool stdout_open_ = false;
  bool stderr_open_ = false;
  bool response_ended_ = false;
  bool idle_fired_ = false;
  bool signalled_ = false;  // we sent the child a signal
  bool watching_connection_ = false;
  bool batching_frames_ = false;  // inside one read from the child; see onStdout()
  std::string stderr_tail_;
};

}  // namespace codex
