// Starts a real gateway for one test: nginx on a free loopback port in front of a codex-worker
// pool whose child is fake-codex, all inside a private runtime directory.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <set>
#include <string>

#include "http_client.hpp"

namespace codex::test {

struct GatewayOptions {
  int workers = 2;
  std::map<std::string, std::string> env;  // for the pool and, through it, the child
};

class Gateway {
 public:
  explicit Gateway(GatewayOptions options = {});
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  std::string url(const std::string& path) const;
  std::string file(const std::string& name) const { return runtime_ + "/" + name; }
  const std::string& apiKey() const { return api_key_; }

  Response post(const std::string& path, const std::string& body) const;
  Response get(const std::string& path) const;

  pid_t supervisorPid() const { return supervisor_; }
  // Sends SIGTERM to the pool and waits for it to exit; its exit status, or -1 at the deadline.
  int stopPool(std::chrono::milliseconds deadline);
  std::set<pid_t> workerPids() const;
  // Processes whose parent is one of `parents`.
  static std::set<pid_t> childrenOf(const std::set<pid_t>& parents);

  // Open streams across the pool, from GET /__test/conc (-1 on failure).
  int openStreams() const;
  // Polls until /__test/conc reports `count`; false at the deadline.
  bool waitForOpenStreams(int count,
                          std::chrono::milliseconds deadline = std::chrono::seconds(2)) const;
  // Ends every hold-open child by writing the release file once per child.
  bool releaseAll(std::chrono::milliseconds deadline = std::chrono::seconds(15)) const;
  std::string workerLog() const;

 private:
  void start();
  bool waitUntilServing();
  void stop();

  GatewayOptions options_;
  std::string runtime_;
  std::string api_key_ = "test-key-123";
  int port_ = 0;
  pid_t supervisor_ = -1;
  pid_t nginx_ = -1;
};

// The child protocol this run of the suite uses (CODEX_TEST_BACKEND, default proto).
std::string testBackend();

// Polls `condition` until it holds or the deadline passes.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds deadline = std::chrono::seconds(2));

bool processAlive(pid_t pid);
// True once none of `pids` is running (zombies count as gone).
bool processesGone(const std::set<pid_t>& pids);
std::string readFile(const std::string& path);

}  // namespace codex::test
