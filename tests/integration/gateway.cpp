// Test gateway lifecycle; see gateway.hpp.
#include "gateway.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fmt/format.h>

extern char** environ;

namespace codex::test {
namespace {

namespace fs = std::filesystem;

std::string requiredEnv(const char* name) {
  const char* value = getenv(name);
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error(fmt::format("{} is not set: run the tests through meson", name));
  }
  return value;
}

int freePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  socklen_t length = sizeof(address);

  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

// The inherited environment minus anything that configures the gateway or the fake child.
std::map<std::string, std::string> cleanEnvironment() {
  std::map<std::string, std::string> env;

  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string text(*entry);
    size_t eq = text.find('=');
    std::string name = text.substr(0, eq);
    bool ours = name.starts_with("PROXY_") || name.starts_with("CODEX_") ||
                name.starts_with("FAKE_CODEX") || name.starts_with("STREAM_") ||
                name == "CHILD_PID_FILE" || name == "PORT" || name == "TOKEN_LOG_PATH" ||
                name == "PROTO_LOG_PATH";
    if (!ours && eq != std::string::npos) {
      env[name] = text.substr(eq + 1);
    }
  }
  return env;
}

pid_t launch(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
             const std::string& output) {
  std::vector<std::string> env_text;
  for (const auto& [name, value] : env) {
    env_text.push_back(name + "=" + value);
  }
  std::vector<char*> args, envp;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  for (auto& e : env_text) {
    envp.push_back(e.data());
  }
  args.push_back(nullptr);
  envp.push_back(nullptr);

  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  return pid;
}

bool waitExit(pid_t pid, std::chrono::milliseconds deadline) {
  return eventually([pid] { return waitpid(pid, nullptr, WNOHANG) == pid; }, deadline);
}

}  // namespace

std::string testBackend() {
  const char* backend = getenv("CODEX_TEST_BACKEND");
  return backend != nullptr && *backend != '\0' ? backend : "proto";
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;

  while (!condition()) {
    if (std::chrono::steady_clock::now() >= end) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // a poll interval, not a wait
  }
  return true;
}

bool processAlive(pid_t pid) {
  // getline, not an istreambuf_iterator: reading the file of a process reaped after it was
  // opened fails with ESRCH, which libstdc++ throws through the iterator but getline turns
  // into a failed stream, which here means gone.
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string text;
  if (!std::getline(stat, text)) {
    return false;
  }
  size_t paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) {
    return false;
  }
  char state = text[paren + 2];
  return state != 'Z' && state != 'X';
}

bool processesGone(const std::set<pid_t>& pids) {
  for (pid_t pid : pids) {
    if (processAlive(pid)) {
      return false;
    }
  }
  return true;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Gateway::Gateway(GatewayOptions options) : options_(std::move(options)) {
  start();
}

Gateway::~Gateway() {
  stop();
}

void Gateway::start() {
  char pattern[] = "/tmp/codex-gw-XXXXXX";
  runtime_ = mkdtemp(pattern);
  port_ = freePort();
  std::string source = requiredEnv("CODEX_SOURCE_ROOT");
  std::string socket_path = file("fcgi.sock");

  std::string render =
      fmt::format("'{}/scripts/nginx-conf' '{}' {} '{}'", source, runtime_, port_, socket_path);
  if (system(render.c_str()) != 0) {
    throw std::runtime_error("cannot render the nginx config");
  }
  auto env = cleanEnvironment();
  env["PROXY_RUNTIME_DIR"] = runtime_;
  env["PROXY_FCGI_SOCKET"] = socket_path;
  env["PROXY_API_KEY"] = api_key_;
  env["PROXY_WORKERS"] = std::to_string(options_.workers);
  env["PROXY_TEST_ENDPOINTS"] = "true";
  env["PROXY_CODEX_WORKDIR"] = file("work");
  env["CODEX_HOME"] = file("codex-home");
  env["CODEX_BIN"] = requiredEnv("FAKE_CODEX");
  // meson runs the suite once per child protocol; fake-codex speaks both.
  env["CODEX_BACKEND"] = testBackend();
  env["STREAM_RELEASE_FILE"] = file("release");
  env["STREAM_READY_FILE"] = file("ready");
  env["CHILD_PID_FILE"] = file("child.pid");
  env["FAKE_CODEX_DUMP_FILE"] = file("dump.json");
  env["TOKEN_LOG_PATH"] = file("usage.ndjson");
  env["PROTO_LOG_PATH"] = file("proto.ndjson");
  for (const auto& [name, value] : options_.env) {
    env[name] = value;
  }
  supervisor_ = launch({requiredEnv("CODEX_WORKER")}, env, file("worker.log"));
  nginx_ = launch({"/usr/sbin/nginx", "-p", runtime_, "-c", file("nginx.conf")}, env,
                  file("nginx.stderr"));
  if (!waitUntilServing()) {
    std::string logs = workerLog() + readFile(file("nginx.stderr"));
    stop();
    throw std::runtime_error("gateway did not start:\n" + logs);
  }
}

bool Gateway::waitUntilServing() {
  auto ready = [this] {
    std::string log = workerLog();
    size_t workers = 0;
    for (size_t pos = 0; (pos = log.find("\"worker ready\"", pos)) != std::string::npos; ++pos) {
      ++workers;
    }
    return workers >= static_cast<size_t>(options_.workers) && get("/healthz").status == 200;
  };
  return eventually(ready, std::chrono::seconds(15));
}

void Gateway::stop() {
  for (pid_t* pid : {&nginx_, &supervisor_}) {
    if (*pid <= 0) {
      continue;
    }
    kill(*pid, SIGTERM);
    if (!waitExit(*pid, std::chrono::seconds(10))) {
      kill(*pid, SIGKILL);
      waitpid(*pid, nullptr, 0);
    }
    *pid = -1;
  }
  if (getenv("KEEP_TEST_RUNTIME") == nullptr && !runtime_.empty()) {
    std::error_code ec;
    fs::remove_all(runtime_, ec);
  }
}

int Gateway::stopPool(std::chrono::milliseconds deadline) {
  int status = -1;

  kill(supervisor_, SIGTERM);
  bool exited =
      eventually([&] { return waitpid(supervisor_, &status, WNOHANG) == supervisor_; }, deadline);
  if (!exited) {
    return -1;
  }
  supervisor_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string Gateway::url(const std::string& path) const {
  return fmt::format("http://127.0.0.1:{}{}", port_, path);
}

Response Gateway::post(const std::string& path, const std::string& body) const {
  return request("POST", url(path), body, jsonHeaders(api_key_));
}

Response Gateway::get(const std::string& path) const {
  return request("GET", url(path), "", {"Authorization: Bearer " + api_key_});
}

std::set<pid_t> Gateway::workerPids() const {
  return childrenOf({supervisor_});
}

std::set<pid_t> Gateway::childrenOf(const std::set<pid_t>& parents) {
  std::set<pid_t> found;

  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    std::string stat = readFile(entry.path().string() + "/stat");
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos) {
      continue;
    }
    char state = 0;
    pid_t parent = 0;
    if (sscanf(stat.c_str() + paren + 2, "%c %d", &state, &parent) == 2 &&
        parents.count(parent) > 0 && state != 'Z') {
      found.insert(std::stoi(name));
    }
  }
  return found;
}

int Gateway::openStreams() const {
  Response r = get("/__test/conc");
  size_t colon = r.body.find(':');
  if (r.status != 200 || colon == std::string::npos) {
    return -1;
  }
  return std::atoi(r.body.c_str() + colon + 1);
}

bool Gateway::waitForOpenStreams(int count, std::chrono::milliseconds deadline) const {
  return eventually([&] { return openStreams() == count; }, deadline);
}

bool Gateway::releaseAll(std::chrono::milliseconds deadline) const {
  std::string release = file("release");

  return eventually(
      [&] {
        if (openStreams() == 0 && childrenOf(workerPids()).empty()) {
          return true;
        }
        // One child consumes (deletes) the file per release; write it again once it is gone.
        if (!fs::exists(release)) {
          std::ofstream(release) << "release";
        }
        return false;
      },
      deadline);
}

std::string Gateway::workerLog() const {
  return readFile(file("worker.log"));
}

}  // namespace codex::test
