// The SSE wire format byte for byte: a raw socket to nginx, read one byte at a time, the chunked
// transfer coding decoded by hand, and every event checked against the exact framing of §12.2.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "gateway.hpp"
#include "json.hpp"

using namespace codex::test;

namespace {

using Clock = std::chrono::steady_clock;

struct WireResponse {
  std::string status_line;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // de-chunked
  bool chunked_end = false;                    // the zero-size chunk and its blank line arrived
  bool closed_after_end = false;               // the server closed right after them
  std::string error;                           // what went wrong on the wire, if anything
};

// Called with the body so far after each complete chunk.
using ChunkWatcher = std::function<void(const std::string& body)>;

int portOf(const std::string& base_url) {
  return std::atoi(base_url.substr(base_url.rfind(':') + 1).c_str());
}

int connectTo(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};

  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// One byte per recv(), as the slowest possible client would read; nothing is buffered here.
class ByteReader {
 public:
  ByteReader(int fd, Clock::time_point deadline) : fd_(fd), deadline_(deadline) {}

  // The next byte; nullopt at end of stream, on error, or at the deadline.
  std::optional<char> next() {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
    pollfd p{fd_, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      timed_out_ = true;
      return std::nullopt;
    }
    char c = 0;
    if (recv(fd_, &c, 1, 0) != 1) {
      return std::nullopt;
    }
    return c;
  }

  // A CRLF-terminated line without its CRLF; nullopt if the stream ends first or a bare LF shows.
  std::optional<std::string> line() {
    std::string text;
    for (std::optional<char> c = next(); c; c = next()) {
      if (*c == '\n') {
        bool crlf = !text.empty() && text.back() == '\r';
        return crlf ? std::optional(text.substr(0, text.size() - 1)) : std::nullopt;
      }
      text += *c;
    }
    return std::nullopt;
  }

  bool timedOut() const { return timed_out_; }

 private:
  int fd_;
  Clock::time_point deadline_;
  bool timed_out_ = false;
};

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

bool readHead(ByteReader& in, WireResponse& r) {
  std::optional<std::string> status = in.line();
  if (!status) {
    return false;
  }
  r.status_line = *status;

  for (std::optional<std::string> line = in.line(); line; line = in.line()) {
    if (line->empty()) {
      return true;
    }
    size_t colon = line->find(':');
    size_t value = line->find_first_not_of(' ', colon + 1);
    r.headers[lower(line->substr(0, colon))] =
        value == std::string::npos ? "" : line->substr(value);
  }
  return false;
}

// Reads one chunk of the chunked transfer coding (RFC 9112 §7.1) into the body; its size, or
// nullopt when the framing is broken.
std::optional<size_t> readChunk(ByteReader& in, WireResponse& r) {
  std::optional<std::string> size_line = in.line();
  if (!size_line || size_line->empty() ||
      !std::isxdigit(static_cast<unsigned char>((*size_line)[0]))) {
    return std::nullopt;
  }
  size_t size = std::stoul(*size_line, nullptr, 16);

  for (size_t i = 0; i < size; ++i) {
    std::optional<char> c = in.next();
    if (!c) {
      return std::nullopt;
    }
    r.body += *c;
  }
  std::optional<std::string> end = in.line();
  return end && end->empty() ? std::optional(size) : std::nullopt;
}

void readChunkedBody(ByteReader& in, WireResponse& r, const ChunkWatcher& watch) {
  for (;;) {
    std::optional<size_t> size = readChunk(in, r);
    if (!size) {
      r.error = in.timedOut() ? "deadline passed inside the body" : "broken chunked framing";
      return;
    }
    if (*size == 0) {
      break;
    }
    watch(r.body);
  }
  r.chunked_end = true;
  r.closed_after_end = !in.next().has_value() && !in.timedOut();
}

WireResponse exchange(
    const Gateway& gw, const std::string& path, const std::string& body,
    const ChunkWatcher& watch = [](const std::string&) {}) {
  WireResponse r;
  int port = portOf(gw.url(""));
  int fd = connectTo(port);
  REQUIRE(fd >= 0);

  std::string request =
      "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
      "\r\nAuthorization: Bearer " + gw.apiKey() +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n" + body;
  REQUIRE(send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));

  ByteReader in(fd, Clock::now() + std::chrono::seconds(20));
  if (!readHead(in, r)) {
    r.error = "no complete response head";
  } else if (lower(r.headers["transfer-encoding"]) != "chunked") {
    r.error = "the stream is not chunked";
  } else {
    readChunkedBody(in, r, watch);
  }
  close(fd);
  return r;
}

// The events of an SSE body, each with its blank-line terminator; an unterminated tail is kept
// as a last, malformed event.
std::vector<std::string> sseEvents(const std::string& body) {
  std::vector<std::string> events;
  size_t start = 0;

  for (size_t end; (end = body.find("\n\n", start)) != std::string::npos; start = end + 2) {
    events.push_back(body.substr(start, end + 2 - start));
  }
  if (start < body.size()) {
    events.push_back(body.substr(start));
  }
  return events;
}

bool isKeepalive(const std::string& event) {
  static const std::regex shape(": keepalive [0-9]+\n\n");
  return std::regex_match(event, shape);
}

// `data: <one line of JSON or [DONE]>\n\n` and nothing else.
bool isDataFrame(const std::string& event) {
  if (!event.starts_with("data: ") || !event.ends_with("\n\n")) {
    return false;
  }
  std::string payload = event.substr(6, event.size() - 8);

  return payload.find('\n') == std::string::npos && (payload == "[DONE]" || Json(payload).valid());
}

// Checks the framing rules every stream obeys; returns the JSON payloads in order.
std::vector<std::string> checkFraming(const WireResponse& r, size_t* keepalives) {
  std::vector<std::string> payloads;
  std::vector<std::string> events = sseEvents(r.body);

  CHECK(r.body.find('\r') == std::string::npos);
  REQUIRE_FALSE(events.empty());
  CHECK(events.back() == "data: [DONE]\n\n");
  for (size_t i = 0; i < events.size(); ++i) {
    CAPTURE(i);
    CAPTURE(events[i]);
    CHECK((isDataFrame(events[i]) || isKeepalive(events[i])));
    if (isKeepalive(events[i])) {
      ++*keepalives;
    } else if (i + 1 < events.size()) {
      payloads.push_back(events[i].substr(6, events[i].size() - 8));
    }
  }
  return payloads;
}

void checkStreamHead(const WireResponse& r) {
  INFO("wire error: " << r.error);
  CHECK(r.error.empty());
  CHECK(r.status_line == "HTTP/1.1 200 OK");
  auto type = r.headers.find("content-type");
  CHECK((type != r.headers.end() && type->second == "text/event-stream"));
  CHECK(r.headers.count("content-length") == 0);
  CHECK(r.chunked_end);
  CHECK(r.closed_after_end);
}

int64_t epochMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST_CASE("stream frames on the wire are exactly `data: <json>` and a blank line, LF only") {
  Gateway gw;
  struct Case {
    const char* path;
    const char* body;
    const char* object;
    size_t frames;
  };
  const Case cases[] = {
      {"/v1/chat/completions",
       R"({"model":"codex-5","stream":true,"stream_options":{"include_usage":true},)"
       R"("messages":[{"role":"user","content":"hi"}]})",
       "chat.completion.chunk", 5},
      {"/v1/completions", R"({"model":"codex-5","stream":true,"prompt":"hi"})",
       "text_completion.chunk", 0},
  };

  for (const Case& c : cases) {
    CAPTURE(c.path);
    WireResponse r = exchange(gw, c.path, c.body);
    checkStreamHead(r);
    size_t keepalives = 0;
    std::vector<std::string> payloads = checkFraming(r, &keepalives);
    CHECK(keepalives == 0);
    if (c.frames > 0) {
      CHECK(payloads.size() == c.frames);
    }
    for (const std::string& payload : payloads) {
      CHECK(Json(payload).str("/object") == c.object);
    }
  }
  CHECK(gw.waitForOpenStreams(0));
}

TEST_CASE("keepalive comments on the wire are exactly `: keepalive <epoch ms>` and a blank line") {
  Gateway gw({2, {{"FAKE_CODEX_MODE", "long"}, {"PROXY_SSE_KEEPALIVE_MS", "100"}}});
  std::string body =
      R"({"model":"codex-5","stream":true,"messages":[{"role":"user","content":"hold"}]})";
  bool released = false;
  int64_t start = epochMs();

  // Hold the stream until two keepalives have gone by, then let the child finish.
  WireResponse r = exchange(gw, "/v1/chat/completions", body, [&](const std::string& so_far) {
    size_t seen = 0;
    for (const std::string& event : sseEvents(so_far)) {
      seen += isKeepalive(event);
    }
    if (!released && seen >= 2) {
      std::ofstream(gw.file("release")) << "go";
      released = true;
    }
  });
  int64_t end = epochMs();
  checkStreamHead(r);
  CHECK(released);
  size_t keepalives = 0;
  std::vector<std::string> payloads = checkFraming(r, &keepalives);
  CHECK(keepalives >= 2);
  CHECK(Json(payloads.front()).str("/choices/0/delta/role") == "assistant");
  CHECK(Json(payloads.back()).str("/choices/0/finish_reason") == "stop");

  for (const std::string& event : sseEvents(r.body)) {
    if (isKeepalive(event)) {
      int64_t stamp = std::stoll(event.substr(12));
      CHECK(stamp >= start);
      CHECK(stamp <= end);
    }
  }
  CHECK(gw.waitForOpenStreams(0));
}
