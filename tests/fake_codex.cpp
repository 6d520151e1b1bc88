// A deterministic stand-in for `codex proto` that integration tests run as the gateway's child.

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace {

// What a mode may look at: the arguments it was started with and the submission line.
struct Invocation {
  std::vector<std::string> argv;
  std::string submission;
};

using ModeRunner = void (*)(const Invocation&);

struct Mode {
  std::string_view name;
  // Runs before stdin is read; only long mode needs this, to publish its PID early.
  void (*prepare)();
  bool reads_submission;
  ModeRunner run;
};

constexpr int kLongTickLimit = 50;
constexpr int kHangSeconds = 10;

void sleepMs(long ms) {
  timespec left{ms / 1000, (ms % 1000) * 1000000L};

  // A signal must not shorten a delay the tests rely on.
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

std::string jsonString(std::string_view text) {
  std::string out = "\"";

  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }

  out += '"';
  return out;
}

// A parent that has gone away is a normal end for the child, so a failed write exits quietly.
void writeAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0 && errno == EINTR) {
      continue;
    }
    if (written <= 0) {
      _exit(0);
    }
    bytes.remove_prefix(static_cast<size_t>(written));
  }
}

// Each event goes out in a single write so the reader never sees half a line.
void emit(std::string_view type, std::string_view msg_json = {}) {
  std::string line = "{\"type\":" + jsonString(type);

  if (!msg_json.empty()) {
    line += ",\"msg\":";
    line += msg_json;
  }

  line += "}\n";
  writeAll(STDOUT_FILENO, line);
}

std::string textMsg(std::string_view key, std::string_view value) {
  return "{" + jsonString(key) + ":" + jsonString(value) + "}";
}

std::string usageMsg(int prompt_tokens, int completion_tokens) {
  return "{\"prompt_tokens\":" + std::to_string(prompt_tokens) +
         ",\"completion_tokens\":" + std::to_string(completion_tokens) + "}";
}

void emitTaskOpening() {
  emit("session_configured");
  emit("task_started");
}

// The gateway frames by newline, so a submission without one was never sent.
bool readSubmission(std::string& submission) {
  char c;

  for (;;) {
    const ssize_t got = ::read(STDIN_FILENO, &c, 1);
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0) {
      return false;
    }
    if (c == '\n') {
      return true;
    }
    submission += c;
  }
}

// Tests poll for these files, so they appear whole or not at all.
bool writeFileAtomically(const std::string& path, std::string_view content) {
  const std::string temp = path + ".tmp." + std::to_string(getpid());

  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    return false;
  }

  writeAll(fd, content);
  ::close(fd);

  return std::rename(temp.c_str(), path.c_str()) == 0;
}

void writePidFileFromEnv(const char* variable) {
  const char* path = std::getenv(variable);

  if (path != nullptr && *path != '\0') {
    writeFileAtomically(path, std::to_string(getpid()));
  }
}

void runNormal(const Invocation&) {
  emitTaskOpening();
  sleepMs(10);

  // U+2026 HORIZONTAL ELLIPSIS, spelled as bytes so the source charset cannot change it.
  emit("agent_reasoning_delta", textMsg("delta", "\xE2\x80\xA6"));
  sleepMs(10);

  emit("agent_message_delta", textMsg("delta", "Hello f"));
  sleepMs(5);

  emit("agent_message", textMsg("message", "Hello from fake-codex."));
  sleepMs(5);

  emit("token_count", usageMsg(8, 6));
  sleepMs(5);

  emit("task_complete");
}

void prepareLong() {
  writePidFileFromEnv("CHILD_PID_FILE");
}

// The release file is consumed so the next test starts without a stale signal.
bool releaseRequested(const char* release_path) {
  if (::access(release_path, F_OK) != 0) {
    return false;
  }

  ::unlink(release_path);
  return true;
}

void runLong(const Invocation&) {
  const char* release_path = std::getenv("STREAM_RELEASE_FILE");
  const bool until_released = release_path != nullptr && *release_path != '\0';

  emitTaskOpening();

  for (int tick = 0;; ++tick) {
    emit("agent_message_delta", textMsg("delta", "tick-" + std::to_string(tick) + " "));
    if (tick == 0) {
      writePidFileFromEnv("STREAM_READY_FILE");
    }

    const bool done = until_released ? releaseRequested(release_path) : tick + 1 >= kLongTickLimit;
    if (done) {
      break;
    }
    sleepMs(100);
  }

  emit("task_complete");
}

void runTools(const Invocation&) {
  emitTaskOpening();
  sleepMs(5);

  emit("agent_message_delta",
       textMsg("delta",
               "Before <use_tool><name>web.search</name><path>/</path><query>hello world</query>"
               "</use_tool> AFTER_TOOL_TEXT"));
  sleepMs(5);

  emit("token_count", usageMsg(5, 27));
  sleepMs(5);

  emit("task_complete");
}

void runProviderUsage(const Invocation&) {
  emitTaskOpening();
  sleepMs(5);

  emit("agent_message", textMsg("message", "Provider supplied usage chunk."));
  sleepMs(5);

  emit("usage", usageMsg(9, 5));
  sleepMs(5);

  emit("task_complete");
}

void runTokenCountOnly(const Invocation&) {
  emitTaskOpening();
  sleepMs(5);

  emit("agent_message", textMsg("message", "Token-count only stream response."));
  sleepMs(5);

  emit("token_count", usageMsg(11, 7));
  sleepMs(5);
}

void runNoComplete(const Invocation&) {
  emitTaskOpening();
  sleepMs(5);

  emit("agent_message", textMsg("message", "Hello (truncated) from fake-codex."));
  sleepMs(5);
}

void runHang(const Invocation&) {
  sleepMs(kHangSeconds * 1000L);
}

void runStreamHang(const Invocation&) {
  emitTaskOpening();
  sleepMs(10);

  emit("agent_message_delta", textMsg("delta", "Hello (pre-hang)"));
  sleepMs(kHangSeconds * 1000L);
}

std::string jsonStringArray(const std::vector<std::string>& items) {
  std::string out = "[";

  for (size_t i = 0; i < items.size(); ++i) {
    out += (i == 0 ? "" : ",") + jsonString(items[i]);
  }

  out += "]";
  return out;
}

// Descriptors open in this process, so tests can prove nothing leaked in from the worker.
std::vector<std::string> openDescriptors() {
  std::vector<std::string> fds;
  std::error_code error;

  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", error)) {
    fds.push_back(entry.path().filename().string());
  }
  return fds;
}

std::string envOr(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

std::string describeInvocation(const Invocation& invocation) {
  std::error_code error;
  const std::string cwd = std::filesystem::current_path(error).string();
  const char* codex_home = std::getenv("CODEX_HOME");

  // A null CODEX_HOME tells the test the variable was unset rather than empty.
  return "{\"argv\":" + jsonStringArray(invocation.argv) + ",\"cwd\":" + jsonString(cwd) +
         ",\"codex_home\":" + (codex_home == nullptr ? "null" : jsonString(codex_home)) +
         ",\"proxy_api_key_present\":" +
         (std::getenv("PROXY_API_KEY") != nullptr ? "true" : "false") +
         ",\"request_id\":" + jsonString(envOr("CODEX_GATEWAY_REQUEST_ID")) +
         ",\"fds\":" + jsonStringArray(openDescriptors()) +
         ",\"submission\":" + jsonString(invocation.submission) + "}\n";
}

void runDump(const Invocation& invocation) {
  const char* path = std::getenv("FAKE_CODEX_DUMP_FILE");

  if (path == nullptr || *path == '\0' ||
      !writeFileAtomically(path, describeInvocation(invocation))) {
    std::fputs("fake-codex: dump mode needs a writable FAKE_CODEX_DUMP_FILE\n", stderr);
    std::exit(2);
  }

  runNormal(invocation);
}

void runSilentExit(const Invocation&) {}

void runStderrOnly(const Invocation&) {
  writeAll(STDERR_FILENO, "fake-codex: diagnostic on stderr only\n");
}

void runError(const Invocation&) {
  emitTaskOpening();
  emit("error", textMsg("message", "fake backend failure"));
}

// SIGKILL rather than abort() so the test sees an uncatchable death and no core file.
void runCrash(const Invocation&) {
  emitTaskOpening();
  emit("agent_message_delta", textMsg("delta", "partial"));
  std::raise(SIGKILL);
}

constexpr Mode kModes[] = {
    {"normal", nullptr, true, runNormal},
    {"long", prepareLong, true, runLong},
    {"tools", nullptr, true, runTools},
    {"provider-usage", nullptr, true, runProviderUsage},
    {"token-count-only", nullptr, true, runTokenCountOnly},
    {"no-complete", nullptr, true, runNoComplete},
    {"hang", nullptr, false, runHang},
    {"stream-hang", nullptr, true, runStreamHang},
    {"dump", nullptr, true, runDump},
    {"silent-exit", nullptr, true, runSilentExit},
    {"stderr-only", nullptr, true, runStderrOnly},
    {"error", nullptr, true, runError},
    {"crash", nullptr, true, runCrash},
};

const Mode* findMode(std::string_view name) {
  if (name.empty()) {
    name = "normal";
  }

  for (const Mode& mode : kModes) {
    if (mode.name == name) {
      return &mode;
    }
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode_env = std::getenv("FAKE_CODEX_MODE");
  const Mode* mode = findMode(mode_env == nullptr ? "" : mode_env);
  if (mode == nullptr) {
    std::fprintf(stderr, "fake-codex: unknown FAKE_CODEX_MODE '%s'\n", mode_env);
    return 2;
  }

  // A vanished parent must surface as EPIPE from write(), not kill us with a signal.
  std::signal(SIGPIPE, SIG_IGN);

  if (mode->prepare != nullptr) {
    mode->prepare();
  }

  Invocation invocation{std::vector<std::string>(argv, argv + argc), {}};
  if (mode->reads_submission && !readSubmission(invocation.submission)) {
    return 0;
  }

  mode->run(invocation);

  ::close(STDOUT_FILENO);
  return 0;
}
