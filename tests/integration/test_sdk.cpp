// The official `openai` npm package as a client of real gateways: runs tests/sdk/openai.test.mjs
// under node's test runner against one normal gateway and one that holds its streams open.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gateway.hpp"

extern char** environ;

using namespace codex::test;

namespace {

namespace fs = std::filesystem;

struct CommandResult {
  int exit_code = -1;  // -1 when the command did not exit by itself
  bool timed_out = false;
  std::string output;  // stdout and stderr, interleaved as written
};

std::vector<std::string> environmentWith(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;

  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string text(*entry);
    if (extra.count(text.substr(0, text.find('='))) == 0) {
      env.push_back(text);
    }
  }
  for (const auto& [name, value] : extra) {
    env.push_back(name + "=" + value);
  }
  return env;
}

// Forks `argv` (looked up on PATH) in its own process group, with stdout and stderr on a pipe.
pid_t spawn(std::vector<std::string> argv, std::vector<std::string> env, const std::string& cwd,
            int* output) {
  std::vector<char*> args, envp;
  for (auto& a : argv) {
    args.push_back(a.data());
  }
  for (auto& e : env) {
    envp.push_back(e.data());
  }
  args.push_back(nullptr);
  envp.push_back(nullptr);
  int fds[2];
  REQUIRE(pipe2(fds, O_CLOEXEC) == 0);

  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    if (chdir(cwd.c_str()) == 0) {
      execvpe(args[0], args.data(), envp.data());
    }
    _exit(127);
  }
  close(fds[1]);
  *output = fds[0];
  return pid;
}

// Runs a command to its end, or kills its whole process group at the deadline.
CommandResult run(const std::vector<std::string>& argv,
                  const std::map<std::string, std::string>& env, const std::string& cwd,
                  std::chrono::milliseconds deadline) {
  CommandResult result;
  int output = -1;
  pid_t pid = spawn(argv, environmentWith(env), cwd, &output);
  auto end = std::chrono::steady_clock::now() + deadline;

  char buffer[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    pollfd p{output, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) == 0) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
      break;
    }
    ssize_t n = read(output, buffer, sizeof(buffer));
    if (n <= 0) {
      break;
    }
    result.output.append(buffer, static_cast<size_t>(n));
  }
  close(output);

  int status = 0;
  waitpid(pid, &status, 0);
  if (!result.timed_out && WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  }
  return result;
}

}  // namespace

TEST_CASE("the official openai npm package works against the gateway") {
  const char* root = std::getenv("CODEX_SOURCE_ROOT");
  REQUIRE_MESSAGE(root != nullptr, "CODEX_SOURCE_ROOT is not set: run the tests through meson");
  fs::path sdk = fs::path(root) / "tests" / "sdk";
  if (!fs::exists(sdk / "node_modules" / "openai" / "package.json")) {
    FAIL("tests/sdk/node_modules is missing: run `npm ci` in " << sdk.string()
                                                               << " (scripts/test does this)");
  }
  Gateway gw;
  Gateway hold({2,
                {{"FAKE_CODEX_MODE", "long"},
                 {"PROXY_SSE_MAX_CONCURRENCY", "1"},
                 {"PROXY_SSE_KEEPALIVE_MS", "100"}}});

  CommandResult node = run({"node", "--test", "--test-reporter=spec", "openai.test.mjs"},
                           {{"GATEWAY_URL", gw.url("")},
                            {"HOLD_URL", hold.url("")},
                            {"GATEWAY_API_KEY", gw.apiKey()},
                            {"NO_COLOR", "1"}},
                           sdk.string(), std::chrono::seconds(120));
  INFO("node --test output:\n" << node.output);
  CHECK_FALSE(node.timed_out);
  CHECK(node.exit_code == 0);
  CHECK(hold.waitForOpenStreams(0));
}
