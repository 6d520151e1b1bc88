// A deterministic stand-in for the Codex CLI that integration tests run as the gateway's child:
// it speaks `codex proto`, or `codex app-server` (stdio JSON-RPC) when argv[1] is "app-server".

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace {

// What a mode may look at: the arguments it was started with and the submission line.
struct Invocation {
  std::vector<std::string> argv;
  std::string submission;
};

class AppServer;

using ModeRunner = void (*)(const Invocation&);
// What a mode streams in app-server form once turn/start has been answered.
using TurnScript = void (*)(AppServer&);

struct Mode {
  std::string_view name;
  // Runs before stdin is read; only long mode needs this, to publish its PID early.
  void (*prepare)();
  bool reads_submission;
  // Null when the mode imitates something only app-server does, such as a replaying retry.
  ModeRunner run;
  TurnScript turn;
};

constexpr int kLongTickLimit = 50;
constexpr int kHangSeconds = 10;
// How often a held stream looks for its release file: thousands are held at once, so rarely.
constexpr int kHoldPollMs = 200;

// Texts both protocols stream, so one test passes against either backend.
constexpr std::string_view kToolsText =
    "Before <use_tool><name>web.search</name><path>/</path><query>hello world</query>"
    "</use_tool> AFTER_TOOL_TEXT";
constexpr std::string_view kProviderUsageText = "Provider supplied usage chunk.";
constexpr std::string_view kTokenCountOnlyText = "Token-count only stream response.";
constexpr std::string_view kTruncatedText = "Hello (truncated) from fake-codex.";
constexpr std::string_view kPreHangText = "Hello (pre-hang)";
constexpr std::string_view kHeldText = "Held open";
constexpr std::string_view kCrashText = "partial";
// U+2026 HORIZONTAL ELLIPSIS, spelled as bytes so the source charset cannot change it.
constexpr std::string_view kReasoningText = "\xE2\x80\xA6";

void sleepMs(long ms) {
  timespec left{ms / 1000, (ms % 1000) * 1000000L};

  if (ms <= 0) {
    return;
  }

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

// The normal script; fast mode plays it with no pauses, so a benchmark times only the gateway.
void playNormal(long pause_ms) {
  emitTaskOpening();
  sleepMs(2 * pause_ms);

  emit("agent_reasoning_delta", textMsg("delta", kReasoningText));
  sleepMs(2 * pause_ms);

  emit("agent_message_delta", textMsg("delta", "Hello f"));
  sleepMs(pause_ms);

  emit("agent_message", textMsg("message", "Hello from fake-codex."));
  sleepMs(pause_ms);

  emit("token_count", usageMsg(8, 6));
  sleepMs(pause_ms);

  emit("task_complete");
}

void runNormal(const Invocation&) {
  playNormal(5);
}

void runFast(const Invocation&) {
  playNormal(0);
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

// Without STREAM_RELEASE_FILE the stream ends after a fixed count; with it, when the test says so.
bool longStreamDone(int tick) {
  const char* release_path = std::getenv("STREAM_RELEASE_FILE");

  if (release_path == nullptr || *release_path == '\0') {
    return tick + 1 >= kLongTickLimit;
  }
  return releaseRequested(release_path);
}

std::string tickText(int tick) {
  return "tick-" + std::to_string(tick) + " ";
}

void runLong(const Invocation&) {
  emitTaskOpening();

  for (int tick = 0;; ++tick) {
    emit("agent_message_delta", textMsg("delta", tickText(tick)));
    if (tick == 0) {
      writePidFileFromEnv("STREAM_READY_FILE");
    }

    if (longStreamDone(tick)) {
      break;
    }
    sleepMs(100);
  }

  emit("task_complete");
}

void runTools(const Invocation&) {
  emitTaskOpening();
  sleepMs(5);

  emit("agent_message_delta", textMsg("delta", kToolsText));
  sleepMs(5);

  emit("token_count", usageMsg(5, 27));
  sleepMs(5);

  emit("task_complete");
}

void runProviderUsage(const Invocation&) {
  emitTaskOpening();
  sleepMs(5);

  emit("agent_message", textMsg("message", kProviderUsageText));
  sleepMs(5);

  emit("usage", usageMsg(9, 5));
  sleepMs(5);

  emit("task_complete");
}

void runTokenCountOnly(const Invocation&) {
  emitTaskOpening();
  sleepMs(5);

  emit("agent_message", textMsg("message", kTokenCountOnlyText));
  sleepMs(5);

  emit("token_count", usageMsg(11, 7));
  sleepMs(5);
}

void runNoComplete(const Invocation&) {
  emitTaskOpening();
  sleepMs(5);

  emit("agent_message", textMsg("message", kTruncatedText));
  sleepMs(5);
}

void runHang(const Invocation&) {
  sleepMs(kHangSeconds * 1000L);
}

void runStreamHang(const Invocation&) {
  emitTaskOpening();
  sleepMs(10);

  emit("agent_message_delta", textMsg("delta", kPreHangText));
  sleepMs(kHangSeconds * 1000L);
}

// Every held child watches the same file, so unlike STREAM_RELEASE_FILE it is never consumed.
bool holdReleased() {
  const char* path = std::getenv("HOLD_RELEASE_FILE");

  return path != nullptr && *path != '\0' && ::access(path, F_OK) == 0;
}

// Stdin at EOF means the gateway has ended the request, so there is nothing left to hold.
void waitForReleaseOrEof() {
  pollfd input{STDIN_FILENO, POLLIN, 0};
  char chunk[4096];

  while (!holdReleased()) {
    if (::poll(&input, 1, kHoldPollMs) > 0 && ::read(STDIN_FILENO, chunk, sizeof(chunk)) == 0) {
      _exit(0);
    }
  }
}

// Benchmarks hold thousands of streams open with one delta each, then end them all at once.
void runHold(const Invocation&) {
  emitTaskOpening();
  emit("agent_message_delta", textMsg("delta", kHeldText));

  waitForReleaseOrEof();
  emit("task_complete");
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

// A null tells the test the variable was unset rather than empty.
std::string envOrNull(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "null" : jsonString(value);
}

// The opening of every dump, left unclosed so each protocol can add what it received.
std::string describeProcess(const Invocation& invocation) {
  std::error_code error;
  const std::string cwd = std::filesystem::current_path(error).string();

  return "{\"argv\":" + jsonStringArray(invocation.argv) + ",\"cwd\":" + jsonString(cwd) +
         ",\"codex_home\":" + envOrNull("CODEX_HOME") + ",\"proxy_api_key_present\":" +
         (std::getenv("PROXY_API_KEY") != nullptr ? "true" : "false") +
         ",\"request_id\":" + jsonString(envOr("CODEX_GATEWAY_REQUEST_ID")) +
         ",\"fds\":" + jsonStringArray(openDescriptors());
}

std::string describeInvocation(const Invocation& invocation) {
  return describeProcess(invocation) + ",\"submission\":" + jsonString(invocation.submission) +
         "}\n";
}

void writeDump(const std::string& content) {
  const char* path = std::getenv("FAKE_CODEX_DUMP_FILE");

  if (path == nullptr || *path == '\0' || !writeFileAtomically(path, content)) {
    std::fputs("fake-codex: dump mode needs a writable FAKE_CODEX_DUMP_FILE\n", stderr);
    std::exit(2);
  }
}

void runDump(const Invocation& invocation) {
  writeDump(describeInvocation(invocation));
  runNormal(invocation);
}

void runSilentExit(const Invocation&) {}

void writeStderrDiagnostic() {
  writeAll(STDERR_FILENO, "fake-codex: diagnostic on stderr only\n");
}

void runStderrOnly(const Invocation&) {
  writeStderrDiagnostic();
}

void runError(const Invocation&) {
  emitTaskOpening();
  emit("error", textMsg("message", "fake backend failure"));
}

// SIGKILL rather than abort() so the test sees an uncatchable death and no core file.
void runCrash(const Invocation&) {
  emitTaskOpening();
  emit("agent_message_delta", textMsg("delta", kCrashText));
  std::raise(SIGKILL);
}

int runProto(const Mode& mode, Invocation invocation) {
  if (mode.reads_submission && !readSubmission(invocation.submission)) {
    return 0;
  }

  mode.run(invocation);

  ::close(STDOUT_FILENO);
  return 0;
}

// ---- codex app-server: one JSON object per line both ways, JSON-RPC shapes without "jsonrpc".

// JSON-RPC's "invalid request", which the real server uses for every kind of misuse.
constexpr int kInvalidRequest = -32600;
constexpr std::string_view kThreadId = "thr_fake_1";
constexpr std::string_view kTurnId = "turn_fake_1";
constexpr std::string_view kMessageItem = "msg_fake_1";
// Every turn notification names its thread and turn; ours are fixed, so the fragment is too.
constexpr std::string_view kTurnRef = R"("threadId":"thr_fake_1","turnId":"turn_fake_1")";
constexpr std::string_view kTurnInProgress = R"({"id":"turn_fake_1","status":"inProgress"})";

// std::string gains an operator+ for string_view only in C++26, so JSON is assembled here.
std::string join(std::initializer_list<std::string_view> pieces) {
  std::string out;

  for (const std::string_view piece : pieces) {
    out += piece;
  }
  return out;
}

long nowMs() {
  timespec now{};

  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec * 1000L + now.tv_nsec / 1000000L;
}

// The quote that closes the string opening at `open`, or npos if the text ends first.
size_t stringEnd(std::string_view json, size_t open) {
  for (size_t i = open + 1; i < json.size(); ++i) {
    if (json[i] == '\\') {
      ++i;
    } else if (json[i] == '"') {
      return i;
    }
  }
  return std::string_view::npos;
}

size_t skipSpaces(std::string_view json, size_t i) {
  while (i < json.size() && (json[i] == ' ' || json[i] == '\t')) {
    ++i;
  }
  return i;
}

// Where the value of `key` starts in the outermost object. Strings and nested values are stepped
// over, so a prompt or an injected item that mentions "id" cannot pass for the request's own.
std::optional<size_t> memberValue(std::string_view json, std::string_view key) {
  int depth = 0;

  for (size_t i = 0; i < json.size(); ++i) {
    if (json[i] == '{' || json[i] == '[') {
      ++depth;
    } else if (json[i] == '}' || json[i] == ']') {
      --depth;
    } else if (json[i] == '"') {
      const size_t end = stringEnd(json, i);
      if (end == std::string_view::npos) {
        return std::nullopt;
      }
      const size_t colon = skipSpaces(json, end + 1);
      if (depth == 1 && colon < json.size() && json[colon] == ':' &&
          json.substr(i + 1, end - i - 1) == key) {
        return skipSpaces(json, colon + 1);
      }
      i = end;
    }
  }
  return std::nullopt;
}

// Method names and our ids need no unescaping, so the raw text between the quotes will do.
std::optional<std::string_view> stringMember(std::string_view json, std::string_view key) {
  const std::optional<size_t> at = memberValue(json, key);
  if (!at || *at >= json.size() || json[*at] != '"') {
    return std::nullopt;
  }

  const size_t end = stringEnd(json, *at);
  if (end == std::string_view::npos) {
    return std::nullopt;
  }
  return json.substr(*at + 1, end - *at - 1);
}

std::optional<long> integerMember(std::string_view json, std::string_view key) {
  const std::optional<size_t> at = memberValue(json, key);
  if (!at) {
    return std::nullopt;
  }

  // strtol wants a terminated string; no integer we accept is longer than this.
  const std::string digits(json.substr(*at, 24));
  char* end = nullptr;
  const long value = std::strtol(digits.c_str(), &end, 10);
  if (end == digits.c_str()) {
    return std::nullopt;
  }
  return value;
}

// The text of an object-valued member, so its own members can be looked up the same way.
std::string_view objectMember(std::string_view json, std::string_view key) {
  const std::optional<size_t> at = memberValue(json, key);
  if (!at || *at >= json.size() || json[*at] != '{') {
    return {};
  }

  int depth = 0;
  for (size_t i = *at; i < json.size(); ++i) {
    if (json[i] == '"') {
      i = stringEnd(json, i);
      if (i == std::string_view::npos) {
        return {};
      }
    } else if (json[i] == '{') {
      ++depth;
    } else if (json[i] == '}' && --depth == 0) {
      return json.substr(*at, i - *at + 1);
    }
  }
  return {};
}

// Each message goes out in a single write so the reader never sees half a line.
void sendLine(std::string line) {
  line += '\n';
  writeAll(STDOUT_FILENO, line);
}

void respond(long id, std::string_view result) {
  sendLine(join({R"({"id":)", std::to_string(id), R"(,"result":)", result, "}"}));
}

void respondError(long id, std::string_view message) {
  sendLine(join({R"({"id":)", std::to_string(id), R"(,"error":{"code":)",
                 std::to_string(kInvalidRequest), R"(,"message":)", jsonString(message), "}}"}));
}

void notify(std::string_view method, std::string_view params) {
  sendLine(join({R"({"method":)", jsonString(method), R"(,"params":)", params, "}"}));
}

void notifyThreadStatus(std::string_view status) {
  notify("thread/status/changed", join({R"({"threadId":"thr_fake_1","status":)", status, "}"}));
}

std::string agentMessageParams(std::string_view item, std::string_view text) {
  return join({R"({"item":{"type":"agentMessage","id":)", jsonString(item), R"(,"text":)",
               jsonString(text), R"(,"phase":null},)", kTurnRef, "}"});
}

std::string tokenBreakdown(int input_tokens, int output_tokens) {
  return join({R"({"totalTokens":)", std::to_string(input_tokens + output_tokens),
               R"(,"inputTokens":)", std::to_string(input_tokens),
               R"(,"cachedInputTokens":0,"outputTokens":)", std::to_string(output_tokens),
               R"(,"reasoningOutputTokens":0})"});
}

// The error object, unclosed: turn/completed ends it here, the error notification adds details.
std::string errorFields(std::string_view message, std::string_view error_info) {
  return join({R"({"message":)", jsonString(message), R"(,"codexErrorInfo":)", error_info});
}

// Lines from the gateway on stdin. The client ends a session by closing stdin and the real server
// then exits at once, even mid-turn, so EOF ends this process wherever it is noticed.
class LineReader {
 public:
  // A complete line, or nothing if none came within timeout_ms (-1 waits as long as it takes).
  std::optional<std::string> next(int timeout_ms) {
    if (std::optional<std::string> line = takeLine()) {
      return line;
    }

    pollfd input{STDIN_FILENO, POLLIN, 0};
    if (::poll(&input, 1, timeout_ms) > 0) {
      fill();
    }
    return takeLine();
  }

 private:
  std::optional<std::string> takeLine() {
    const size_t newline = pending_.find('\n');
    if (newline == std::string::npos) {
      return std::nullopt;
    }

    std::string line = pending_.substr(0, newline);
    pending_.erase(0, newline + 1);
    return line;
  }

  void fill() {
    char chunk[4096];

    const ssize_t got = ::read(STDIN_FILENO, chunk, sizeof(chunk));
    if (got < 0 && errno == EINTR) {
      return;
    }
    if (got <= 0) {
      _exit(0);
    }
    pending_.append(chunk, static_cast<size_t>(got));
  }

  std::string pending_;
};

// One app-server session: the handshake, one thread, and turns played from the mode's script.
// Once a turn has ended every script step does nothing, so a script reads as a straight list of
// what the real server sends, and an interrupt can land between any two of its steps.
class AppServer {
 public:
  AppServer(TurnScript script, Invocation invocation)
      : script_(script), invocation_(std::move(invocation)) {}

  [[noreturn]] void serve() {
    for (;;) {
      if (const std::optional<std::string> line = input_.next(-1)) {
        dispatch(*line);
      }
    }
  }

  const Invocation& invocation() const { return invocation_; }
  const std::vector<std::string>& requests() const { return requests_; }

  bool live() const { return turn_live_; }
  void pause(long ms);
  void reasoning(std::string_view text);
  void delta(std::string_view text, std::string_view item = kMessageItem);
  void usage(int input_tokens, int output_tokens);
  void retrying(std::string_view message, std::string_view error_info);
  void fail(std::string_view message, std::string_view error_info);
  void complete();
  void quit();

 private:
  using Handler = void (AppServer::*)(long id, std::string_view params);
  struct Route {
    std::string_view method;
    Handler handle;
  };
  static const Route kRoutes[];

  void dispatch(const std::string& line);
  void onInitialize(long id, std::string_view params);
  void onThreadStart(long id, std::string_view params);
  void onInjectItems(long id, std::string_view params);
  void onTurnStart(long id, std::string_view params);
  void onTurnInterrupt(long id, std::string_view params);
  bool knownThread(long id, std::string_view params);
  void reportError(std::string_view message, std::string_view error_info, bool will_retry);
  void closeItem();
  void finish(std::string_view status, std::string_view error);

  TurnScript script_;
  Invocation invocation_;
  LineReader input_;
  bool initialized_ = false;
  bool thread_started_ = false;
  // The dump records stdin up to and including the first turn/start.
  bool recording_ = true;
  std::vector<std::string> requests_;
  bool turn_live_ = false;
  std::string item_id_;
  std::string item_text_;
  bool item_open_ = false;
};

// One method a line, like the mode table below.
// clang-format off
const AppServer::Route AppServer::kRoutes[] = {
    {"initialize", &AppServer::onInitialize},
    {"thread/start", &AppServer::onThreadStart},
    {"thread/inject_items", &AppServer::onInjectItems},
    {"turn/start", &AppServer::onTurnStart},
    {"turn/interrupt", &AppServer::onTurnInterrupt},
};
// clang-format on

void AppServer::dispatch(const std::string& line) {
  if (recording_) {
    requests_.push_back(line);
  }

  // Notifications such as "initialized" want no answer, and the real server skips non-JSON lines.
  const std::optional<std::string_view> method = stringMember(line, "method");
  const std::optional<long> id = integerMember(line, "id");
  if (!method || !id) {
    return;
  }

  if (!initialized_ && *method != "initialize") {
    respondError(*id, "Not initialized");
    return;
  }

  for (const Route& route : kRoutes) {
    if (route.method == *method) {
      (this->*route.handle)(*id, objectMember(line, "params"));
      return;
    }
  }
  respondError(*id, "Invalid request: unknown variant");
}

void AppServer::onInitialize(long id, std::string_view) {
  if (initialized_) {
    respondError(id, "Already initialized");
    return;
  }

  initialized_ = true;
  respond(id,
          join({R"({"userAgent":"fake-codex/0.0","codexHome":)", jsonString(envOr("CODEX_HOME")),
                R"(,"platformFamily":"unix","platformOs":"linux"})"}));
}

void AppServer::onThreadStart(long id, std::string_view) {
  thread_started_ = true;
  respond(id, R"({"thread":{"id":"thr_fake_1","ephemeral":true},"model":"gpt-5"})");
}

// A gateway that loses the thread id would fail against the real server, so it fails here too.
bool AppServer::knownThread(long id, std::string_view params) {
  const std::optional<std::string_view> thread = stringMember(params, "threadId");

  if (thread_started_ && thread == kThreadId) {
    return true;
  }
  respondError(id, join({"thread not found: ", thread.value_or("(none)")}));
  return false;
}

void AppServer::onInjectItems(long id, std::string_view params) {
  if (knownThread(id, params)) {
    respond(id, "{}");
  }
}

// The script runs inside this handler; its pauses keep reading stdin, so requests that arrive
// mid-turn are answered in order and an interrupt stops the script at its next step.
void AppServer::onTurnStart(long id, std::string_view params) {
  recording_ = false;
  if (!knownThread(id, params)) {
    return;
  }
  if (turn_live_) {
    respondError(id, "Invalid request: a turn is already running");
    return;
  }

  respond(id, join({R"({"turn":)", kTurnInProgress, "}"}));
  turn_live_ = true;
  item_id_.clear();
  item_open_ = false;
  notifyThreadStatus(R"({"type":"active","activeFlags":[]})");
  notify("turn/started", join({R"({"threadId":"thr_fake_1","turn":)", kTurnInProgress, "}"}));

  script_(*this);
}

// The real server wants the turn named as well; an interrupt for another turn would stop nothing.
void AppServer::onTurnInterrupt(long id, std::string_view params) {
  if (!knownThread(id, params)) {
    return;
  }
  const std::optional<std::string_view> turn = stringMember(params, "turnId");
  if (turn != kTurnId) {
    respondError(id, join({"turn not found: ", turn.value_or("(none)")}));
    return;
  }

  respond(id, "{}");
  if (!turn_live_) {
    return;
  }

  // An interrupted turn sends no item/completed for its partial message and no usage.
  notifyThreadStatus(R"({"type":"idle"})");
  finish("interrupted", "null");
}

// Waits as the real server streams: still reading stdin, so an interrupt or EOF lands at once.
void AppServer::pause(long ms) {
  const long deadline = nowMs() + ms;

  for (long left = ms; turn_live_ && left > 0; left = deadline - nowMs()) {
    if (const std::optional<std::string> line = input_.next(static_cast<int>(left))) {
      dispatch(*line);
    }
  }
}

void AppServer::reasoning(std::string_view text) {
  if (!turn_live_) {
    return;
  }

  notify("item/reasoning/summaryTextDelta",
         join({"{", kTurnRef, R"(,"itemId":"rs_fake_1","delta":)", jsonString(text),
               R"(,"summaryIndex":0})"}));
}

// A new item id starts a new message, which is how the real server marks a replayed stream.
void AppServer::delta(std::string_view text, std::string_view item) {
  if (!turn_live_) {
    return;
  }

  if (item != item_id_) {
    item_id_ = item;
    item_text_.clear();
    item_open_ = true;
    notify("item/started", agentMessageParams(item_id_, ""));
  }

  item_text_ += text;
  notify("item/agentMessage/delta", join({"{", kTurnRef, R"(,"itemId":)", jsonString(item_id_),
                                          R"(,"delta":)", jsonString(text), "}"}));
}

// The real server completes the message item before it reports the request's usage.
void AppServer::closeItem() {
  if (item_open_) {
    item_open_ = false;
    notify("item/completed", agentMessageParams(item_id_, item_text_));
  }
}

void AppServer::usage(int input_tokens, int output_tokens) {
  if (!turn_live_) {
    return;
  }

  closeItem();
  const std::string breakdown = tokenBreakdown(input_tokens, output_tokens);
  notify("thread/tokenUsage/updated", join({"{", kTurnRef, R"(,"tokenUsage":{"total":)", breakdown,
                                            R"(,"last":)", breakdown, "}}"}));
}

void AppServer::reportError(std::string_view message, std::string_view error_info,
                            bool will_retry) {
  notify("error", join({R"({"error":)", errorFields(message, error_info),
                        R"(,"additionalDetails":null},"willRetry":)", will_retry ? "true" : "false",
                        ",", kTurnRef, "}"}));
}

// Only informational to a client, but the real CLI then starts the response again from scratch.
void AppServer::retrying(std::string_view message, std::string_view error_info) {
  if (turn_live_) {
    reportError(message, error_info, true);
  }
}

// The real server's order for a final failure: thread status, error, then the failed turn.
void AppServer::fail(std::string_view message, std::string_view error_info) {
  if (!turn_live_) {
    return;
  }

  notifyThreadStatus(R"({"type":"systemError"})");
  reportError(message, error_info, false);
  finish("failed", errorFields(message, error_info) + "}");
}

void AppServer::complete() {
  if (!turn_live_) {
    return;
  }

  closeItem();
  notifyThreadStatus(R"({"type":"idle"})");
  finish("completed", "null");
}

void AppServer::finish(std::string_view status, std::string_view error) {
  turn_live_ = false;
  notify("turn/completed", join({R"({"threadId":"thr_fake_1","turn":{"id":"turn_fake_1","status":)",
                                 jsonString(status), R"(,"error":)", error, "}}"}));
}

// A CLI that dies mid-turn leaves stdout at EOF with no turn/completed.
void AppServer::quit() {
  if (turn_live_) {
    _exit(0);
  }
}

void playTurnNormal(AppServer& server, long pause_ms) {
  server.reasoning(kReasoningText);
  server.pause(pause_ms);

  server.delta("Hello f");
  server.pause(pause_ms);

  server.delta("rom fake-codex.");
  server.pause(pause_ms);

  server.usage(8, 6);
  server.pause(pause_ms);

  server.complete();
}

void turnNormal(AppServer& server) {
  playTurnNormal(server, 5);
}

void turnFast(AppServer& server) {
  playTurnNormal(server, 0);
}

void turnHold(AppServer& server) {
  server.delta(kHeldText);

  while (server.live() && !holdReleased()) {
    server.pause(kHoldPollMs);
  }
  server.complete();
}

void turnLong(AppServer& server) {
  for (int tick = 0; server.live(); ++tick) {
    server.delta(tickText(tick));
    if (tick == 0) {
      writePidFileFromEnv("STREAM_READY_FILE");
    }

    if (longStreamDone(tick)) {
      break;
    }
    server.pause(100);
  }

  server.complete();
}

void turnTools(AppServer& server) {
  server.delta(kToolsText);
  server.pause(5);

  server.usage(5, 27);
  server.pause(5);

  server.complete();
}

void turnProviderUsage(AppServer& server) {
  server.delta(kProviderUsageText);
  server.pause(5);

  server.usage(9, 5);
  server.pause(5);

  server.complete();
}

void turnTokenCountOnly(AppServer& server) {
  server.delta(kTokenCountOnlyText);
  server.pause(5);

  server.usage(11, 7);
  server.pause(5);

  server.quit();
}

void turnNoComplete(AppServer& server) {
  server.delta(kTruncatedText);
  server.pause(5);

  server.quit();
}

void turnHang(AppServer& server) {
  server.pause(kHangSeconds * 1000L);
  server.quit();
}

void turnStreamHang(AppServer& server) {
  server.delta(kPreHangText);
  server.pause(kHangSeconds * 1000L);

  server.quit();
}

// Written when turn/start arrives, so it holds every line the gateway sent for the request.
std::string describeSession(const AppServer& server) {
  return describeProcess(server.invocation()) +
         ",\"provider_api_key\":" + envOrNull("CODEX_PROVIDER_API_KEY") +
         ",\"requests\":" + jsonStringArray(server.requests()) + "}\n";
}

void turnDump(AppServer& server) {
  writeDump(describeSession(server));
  turnNormal(server);
}

void turnSilentExit(AppServer& server) {
  server.quit();
}

void turnStderrOnly(AppServer& server) {
  writeStderrDiagnostic();
  server.quit();
}

void turnError(AppServer& server) {
  server.fail("fake upstream failure", R"({"httpConnectionFailed":{"httpStatusCode":401}})");
}

// A retry before any text replays nothing, so the gateway should carry on as if it never came.
void turnErrorRetry(AppServer& server) {
  server.retrying("Reconnecting... 1/5",
                  R"({"responseStreamDisconnected":{"httpStatusCode":429}})");
  server.pause(5);

  turnNormal(server);
}

void replayedOpening(AppServer& server, std::string_view item) {
  server.delta("Hello", item);
  server.pause(5);

  server.delta(" from", item);
  server.pause(5);
}

// The real CLI's replay pitfall: after a broken stream it sends the text again under a new item.
// The gateway is expected to interrupt on the error; the pause stands in for the reconnect delay.
void turnReplay(AppServer& server) {
  replayedOpening(server, "msg_1");

  server.retrying("Reconnecting... 1/5",
                  R"({"responseStreamDisconnected":{"httpStatusCode":null}})");
  server.pause(50);

  replayedOpening(server, "msg_2");
  server.delta(" fake-codex.", "msg_2");
  server.pause(5);

  server.complete();
}

// SIGKILL rather than abort() so the test sees an uncatchable death and no core file.
void turnCrash(AppServer& server) {
  server.delta(kCrashText);
  if (server.live()) {
    std::raise(SIGKILL);
  }
}

constexpr Mode kModes[] = {
    {"normal", nullptr, true, runNormal, turnNormal},
    {"fast", nullptr, true, runFast, turnFast},
    {"hold", nullptr, true, runHold, turnHold},
    {"long", prepareLong, true, runLong, turnLong},
    {"tools", nullptr, true, runTools, turnTools},
    {"provider-usage", nullptr, true, runProviderUsage, turnProviderUsage},
    {"token-count-only", nullptr, true, runTokenCountOnly, turnTokenCountOnly},
    {"no-complete", nullptr, true, runNoComplete, turnNoComplete},
    {"hang", nullptr, false, runHang, turnHang},
    {"stream-hang", nullptr, true, runStreamHang, turnStreamHang},
    {"dump", nullptr, true, runDump, turnDump},
    {"silent-exit", nullptr, true, runSilentExit, turnSilentExit},
    {"stderr-only", nullptr, true, runStderrOnly, turnStderrOnly},
    {"error", nullptr, true, runError, turnError},
    {"error-retry", nullptr, true, nullptr, turnErrorRetry},
    {"replay", nullptr, true, nullptr, turnReplay},
    {"crash", nullptr, true, runCrash, turnCrash},
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
  const bool app_server = argc > 1 && std::string_view(argv[1]) == "app-server";
  const char* mode_env = std::getenv("FAKE_CODEX_MODE");
  const Mode* mode = findMode(mode_env == nullptr ? "" : mode_env);
  if (mode == nullptr) {
    std::fprintf(stderr, "fake-codex: unknown FAKE_CODEX_MODE '%s'\n", mode_env);
    return 2;
  }
  if (app_server ? mode->turn == nullptr : mode->run == nullptr) {
    std::fprintf(stderr, "fake-codex: mode '%s' has no %s form\n", mode_env,
                 app_server ? "app-server" : "proto");
    return 2;
  }

  // A vanished parent must surface as EPIPE from write(), not kill us with a signal.
  std::signal(SIGPIPE, SIG_IGN);

  if (mode->prepare != nullptr) {
    mode->prepare();
  }

  Invocation invocation{std::vector<std::string>(argv, argv + argc), {}};
  if (app_server) {
    AppServer(mode->turn, std::move(invocation)).serve();
  }
  return runProto(*mode, std::move(invocation));
}
