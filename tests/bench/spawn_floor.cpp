// spawn-floor: what one child per request costs with no gateway around it, the yardstick every
// other benchmark figure is divided by.
//
// Each round does what a worker must do for one completion and nothing more: fork, exec the
// child through codex-exec with the arguments the configured protocol gives it, write its
// opening line, answer its handshake, read stdout to EOF and reap it. The protocol object is the
// gateway's own (shared/), so the floor speaks exactly what a worker speaks.
//
// Usage: spawn-floor EXEC_SHIM COUNT   (CODEX_BIN, CODEX_BACKEND and the rest from the environment)
// Prints one JSON object: per-spawn wall time (mean, p50, p99) and CPU time of this process and
// of the children, split so the child's own cost can be told from the parent's.
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "child_protocol.hpp"
#include "config.hpp"
#include "line_framer.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct SpawnResult {
  bool ok = false;
  double wall_ms = 0;
};

struct ChildPipes {
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

double cpuMs(const rusage& usage) {
  auto ms = [](const timeval& t) {
    return t.tv_sec * 1e3 + t.tv_usec / 1e3;
  };
  return ms(usage.ru_utime) + ms(usage.ru_stime);
}

double cpuMs(int who) {
  rusage usage{};

  getrusage(who, &usage);
  return cpuMs(usage);
}

void writeAll(int fd, const std::string& bytes) {
  size_t done = 0;

  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return;  // the child is gone; reaping it reports the failure
    }
    done += static_cast<size_t>(n);
  }
}

// The child side of the fork: the pipes become stdio and, like UV_PROCESS_DETACHED, the child
// leads its own session. Only async-signal-safe calls between fork and exec.
[[noreturn]] void execChild(int (&in)[2], int (&out)[2], int (&err)[2], char* const* argv) {
  dup2(in[0], STDIN_FILENO);
  dup2(out[1], STDOUT_FILENO);
  dup2(err[1], STDERR_FILENO);
  setsid();
  execv(argv[0], argv);
  _exit(127);
}

pid_t forkChild(const std::vector<std::string>& args, ChildPipes& pipes) {
  int in[2], out[2], err[2];
  std::vector<char*> argv;

  for (const auto& arg : args) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);

  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    execChild(in, out, err, argv.data());
  }

  close(in[0]);
  close(out[1]);
  close(err[1]);
  pipes = {in[1], out[0], err[0]};
  return pid;
}

// Reads both output pipes until EOF, feeding stdout lines to the protocol and its replies back.
bool converse(codex::ChildProtocol& protocol, ChildPipes& pipes) {
  codex::LineFramer framer;
  bool complete = false;
  char buffer[16384];
  pollfd fds[2] = {{pipes.stdout_fd, POLLIN, 0}, {pipes.stderr_fd, POLLIN, 0}};

  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    if (poll(fds, 2, -1) < 0 && errno != EINTR) {
      return false;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) {
        continue;
      }
      ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        continue;
      }
      if (i == 1) {
        continue;  // stderr is drained, not read: a worker only keeps its tail
      }
      std::string reply;
      framer.feed(std::string_view(buffer, static_cast<size_t>(n)), [&](std::string_view line) {
        auto event = protocol.parseLine(line, reply);
        complete = complete || (event && event->kind == codex::ChildEvent::Kind::TaskComplete);
      });
      if (!reply.empty()) {
        writeAll(pipes.stdin_fd, reply);
      }
      // Both protocols end the child by closing its stdin once the task is complete.
      if (complete && pipes.stdin_fd >= 0) {
        close(pipes.stdin_fd);
        pipes.stdin_fd = -1;
      }
    }
  }
  return complete;
}

SpawnResult spawnOnce(const codex::Config& config, const std::string& shim,
                      const codex::ChildRequest& request) {
  auto started = Clock::now();
  auto protocol = codex::makeChildProtocol(config);
  std::vector<std::string> args = {shim, std::to_string(getpid()), config.codex_bin};
  for (auto& arg : protocol->arguments(request)) {
    args.push_back(std::move(arg));
  }
  ChildPipes pipes;
  int status = 0;

  pid_t pid = forkChild(args, pipes);
  if (pid < 0) {
    return {};
  }

  writeAll(pipes.stdin_fd, protocol->openingInput(request));
  bool complete = converse(*protocol, pipes);
  if (pipes.stdin_fd >= 0) {
    close(pipes.stdin_fd);
  }
  waitpid(pid, &status, 0);

  std::chrono::duration<double, std::milli> wall = Clock::now() - started;
  return {complete && WIFEXITED(status) && WEXITSTATUS(status) == 0, wall.count()};
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(p * static_cast<double>(values.size() - 1))];
}

codex::ChildRequest benchRequest(const codex::Config& config) {
  codex::ChildRequest request;

  request.request_id = "bench-floor";
  request.messages = {{"user", "hi"}};
  request.prompt = codex::joinPrompt(request.messages);
  request.model.requested = config.codex_model;
  request.model.effective = config.codex_model;
  request.model.accepted = true;
  return request;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: spawn-floor EXEC_SHIM COUNT\n");
    return 2;
  }
  codex::Config config;
  if (auto error = codex::loadConfig(getenv, config)) {
    std::fprintf(stderr, "spawn-floor: %s\n", error->c_str());
    return 2;
  }
  const std::string shim = argv[1];
  const int count = std::atoi(argv[2]);
  const codex::ChildRequest request = benchRequest(config);
  std::vector<double> walls;
  int failures = 0;

  double self_before = cpuMs(RUSAGE_SELF);
  double children_before = cpuMs(RUSAGE_CHILDREN);
  auto started = Clock::now();
  for (int i = 0; i < count; ++i) {
    SpawnResult result = spawnOnce(config, shim, request);
    failures += result.ok ? 0 : 1;
    walls.push_back(result.wall_ms);
  }
  std::chrono::duration<double, std::milli> total = Clock::now() - started;
  double self_ms = cpuMs(RUSAGE_SELF) - self_before;
  double children_ms = cpuMs(RUSAGE_CHILDREN) - children_before;

  std::printf(
      "{\"backend\":\"%s\",\"spawns\":%d,\"failures\":%d,\"wall_ms_mean\":%.4f,"
      "\"wall_ms_p50\":%.4f,\"wall_ms_p99\":%.4f,\"spawns_per_s\":%.2f,"
      "\"parent_cpu_ms\":%.4f,\"child_cpu_ms\":%.4f}\n",
      config.codex_backend.c_str(), count, failures, total.count() / count, percentile(walls, 0.5),
      percentile(walls, 0.99), count * 1000.0 / total.count(), self_ms / count,
      children_ms / count);
  return failures == 0 ? 0 : 1;
}
