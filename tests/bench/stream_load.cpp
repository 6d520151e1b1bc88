// stream-load: the SSE client of the benchmarks. wrk measures plain requests well but cannot
// hold thousands of streams open or tell a first delta from a first byte, so streams come here.
//
// Usage:
//   stream-load closed PORT CONCURRENCY SECONDS
//       a closed loop of stream requests: requests/s, time to first byte, first delta, [DONE]
//   stream-load held PORT STREAMS RELEASE_FILE DEADLINE_S ON_HELD_COMMAND
//       opens STREAMS streams at once, waits for every first delta, runs ON_HELD_COMMAND (the
//       harness samples memory there), creates RELEASE_FILE and waits for every [DONE]
//   stream-load burst PORT ATTEMPTS WAVE SLOT_TABLE LIMIT
//       ATTEMPTS streams in waves of WAVE while a thread samples the open count of SLOT_TABLE
//
// Each prints one JSON object. One connection per request (Connection: close), all on one epoll
// loop, so the client costs one core at most and never runs out of threads.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "slot_table.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kBody =
    R"({"model":"codex-5","stream":true,"messages":[{"role":"user","content":"hi"}]})";
// A content delta with text in it; the role chunk's content, if any, is empty.
constexpr std::string_view kDeltaMarker = R"("content":")";
constexpr std::string_view kDoneMarker = "data: [DONE]";
// Connections still waiting for their first byte; more would overflow nginx's listen backlog
// and turn a burst into SYN retries a second later, which measures the kernel, not us.
constexpr size_t kMaxPending = 512;

double msSince(Clock::time_point start, Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(t - start).count();
}

// One stream request on its own connection, from connect to close.
struct Stream {
  int fd = -1;
  Clock::time_point started;
  std::string request;
  size_t sent = 0;
  std::string head;  // response bytes until the status line is complete
  std::string tail;  // the last bytes read, so a marker split across reads is still found
  int status = 0;
  double first_byte_ms = -1;
  double first_delta_ms = -1;
  double done_ms = -1;
  bool finished = false;
};

struct Summary {
  std::vector<double> first_byte;
  std::vector<double> first_delta;
  std::vector<double> done;
  std::map<int, int> statuses;
  int errors = 0;  // connection failures, and 200 streams that ended without [DONE]
};

std::string requestText(int port) {
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
         "\r\nAuthorization: Bearer codex-local-secret\r\nContent-Type: application/json\r\n"
         "Connection: close\r\nContent-Length: " +
         std::to_string(kBody.size()) + "\r\n\r\n" + std::string(kBody);
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) {
    return -1;
  }
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(p * static_cast<double>(values.size() - 1))];
}

void raiseNofile() {
  rlimit limit{};

  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

// Runs streams on one epoll loop. Callers add streams, then step until their condition holds.
class Loop {
 public:
  explicit Loop(int port) : port_(port), request_(requestText(port)), epoll_(epoll_create1(0)) {}
  ~Loop() { close(epoll_); }

  // Starts one stream; false when the socket could not even be created.
  bool start(Stream& s) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    s = Stream{};
    s.started = Clock::now();
    s.request = request_;
    s.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s.fd < 0) {
      return false;
    }
    int one = 1;
    setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
        errno != EINPROGRESS) {
      fail(s);
      return true;
    }
    epoll_event ev{EPOLLOUT | EPOLLIN, {.ptr = &s}};
    epoll_ctl(epoll_, EPOLL_CTL_ADD, s.fd, &ev);
    ++open_;
    ++pending_;
    return true;
  }

  // Handles whatever is ready within timeout_ms.
  void step(int timeout_ms) {
    epoll_event events[256];

    int n = epoll_wait(epoll_, events, 256, timeout_ms);
    for (int i = 0; i < n; ++i) {
      auto* s = static_cast<Stream*>(events[i].data.ptr);
      if (events[i].events & EPOLLOUT) {
        send(*s);
      }
      if (!s->finished && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        receive(*s);
      }
    }
  }

  size_t open() const { return open_; }
  size_t pending() const { return pending_; }
  size_t delivered() const { return delivered_; }
  // Streams that will never deliver: ended (a 502, a 429, a reset) before their first delta.
  size_t lost() const { return lost_; }
  Summary& summary() { return summary_; }

 private:
  void send(Stream& s) {
    ssize_t n = ::send(s.fd, s.request.data() + s.sent, s.request.size() - s.sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) {
      fail(s);
      return;
    }
    s.sent += n > 0 ? static_cast<size_t>(n) : 0;
    if (s.sent == s.request.size()) {
      epoll_event ev{EPOLLIN, {.ptr = &s}};
      epoll_ctl(epoll_, EPOLL_CTL_MOD, s.fd, &ev);
    }
  }

  void receive(Stream& s) {
    char buffer[16384];

    for (;;) {
      ssize_t n = recv(s.fd, buffer, sizeof(buffer), 0);
      if (n < 0 && errno == EAGAIN) {
        return;
      }
      if (n <= 0) {
        finish(s);
        return;
      }
      onBytes(s, std::string_view(buffer, static_cast<size_t>(n)));
    }
  }

  void onBytes(Stream& s, std::string_view bytes) {
    auto now = Clock::now();

    if (s.first_byte_ms < 0) {
      s.first_byte_ms = msSince(s.started, now);
      --pending_;
    }
    if (s.status == 0) {
      s.head.append(bytes);
      if (s.head.find("\r\n") != std::string::npos && s.head.size() > 12) {
        s.status = std::atoi(s.head.c_str() + 9);  // "HTTP/1.1 200"
      }
    }
    std::string window = s.tail + std::string(bytes);
    if (s.first_delta_ms < 0 && hasDelta(window)) {
      s.first_delta_ms = msSince(s.started, now);
      ++delivered_;
    }
    if (s.done_ms < 0 && window.find(kDoneMarker) != std::string::npos) {
      s.done_ms = msSince(s.started, now);
    }
    s.tail = window.substr(window.size() > 64 ? window.size() - 64 : 0);
  }

  static bool hasDelta(std::string_view window) {
    for (size_t at = window.find(kDeltaMarker); at != std::string_view::npos;
         at = window.find(kDeltaMarker, at + 1)) {
      size_t text = at + kDeltaMarker.size();
      if (text < window.size() && window[text] != '"') {
        return true;
      }
    }
    return false;
  }

  void finish(Stream& s) {
    summary_.statuses[s.status]++;
    if (s.status == 200) {
      summary_.first_byte.push_back(s.first_byte_ms);
      if (s.first_delta_ms >= 0) {
        summary_.first_delta.push_back(s.first_delta_ms);
      }
      if (s.done_ms >= 0) {
        summary_.done.push_back(s.done_ms);
      } else {
        summary_.errors++;
      }
    }
    settle(s);
  }

  void fail(Stream& s) {
    if (s.first_byte_ms < 0) {
      --pending_;
    }
    summary_.errors++;
    summary_.statuses[0]++;
    settle(s);
  }

  void settle(Stream& s) {
    lost_ += s.first_delta_ms < 0 ? 1 : 0;
    close(s.fd);
    s.fd = -1;
    s.finished = true;
    --open_;
  }

  int port_;
  std::string request_;
  int epoll_;
  size_t open_ = 0;
  size_t pending_ = 0;
  size_t delivered_ = 0;
  size_t lost_ = 0;
  Summary summary_;
};

std::string statusesJson(const std::map<int, int>& statuses) {
  std::string out = "{";

  for (const auto& [status, count] : statuses) {
    if (out.size() > 1) {
      out += ',';
    }
    out += '"' + std::to_string(status) + "\":" + std::to_string(count);
  }
  return out + "}";
}

void printLatencies(const char* name, const std::vector<double>& values) {
  std::printf(",\"%s_p50_ms\":%.3f,\"%s_p99_ms\":%.3f", name, percentile(values, 0.5), name,
              percentile(values, 0.99));
}

void printSummary(const Summary& s) {
  std::printf(",\"errors\":%d,\"statuses\":%s", s.errors, statusesJson(s.statuses).c_str());
  printLatencies("first_byte", s.first_byte);
  printLatencies("first_delta", s.first_delta);
  printLatencies("done", s.done);
}

int runClosed(int port, int concurrency, double seconds) {
  Loop loop(port);
  std::vector<Stream> streams(static_cast<size_t>(concurrency));
  auto started = Clock::now();
  auto deadline = started + std::chrono::duration<double>(seconds);

  for (auto& s : streams) {
    loop.start(s);
  }
  while (loop.open() > 0) {
    loop.step(100);
    // A finished slot starts the next request at once until the time is up.
    for (auto& s : streams) {
      if (s.finished && Clock::now() < deadline) {
        loop.start(s);
      }
    }
  }
  double elapsed_s = msSince(started, Clock::now()) / 1000;
  size_t completed = loop.summary().done.size();

  std::printf("{\"concurrency\":%d,\"seconds\":%.3f,\"completed\":%zu,\"rps\":%.2f", concurrency,
              elapsed_s, completed, static_cast<double>(completed) / elapsed_s);
  printSummary(loop.summary());
  std::printf("}\n");
  return 0;
}

// Opens streams no faster than nginx can accept them; see kMaxPending.
void openAll(Loop& loop, std::vector<Stream>& streams) {
  size_t next = 0;

  while (next < streams.size()) {
    while (next < streams.size() && loop.pending() < kMaxPending) {
      loop.start(streams[next++]);
    }
    loop.step(10);
  }
}

int runHeld(int port, int count, const char* release_file, double deadline_s, const char* on_held) {
  Loop loop(port);
  std::vector<Stream> streams(static_cast<size_t>(count));
  auto started = Clock::now();
  auto deadline = started + std::chrono::duration<double>(deadline_s);

  unlink(release_file);
  openAll(loop, streams);
  while (loop.delivered() + loop.lost() < streams.size() && Clock::now() < deadline) {
    loop.step(50);
  }
  double all_delivered_ms = msSince(started, Clock::now());
  size_t delivered = loop.delivered();
  size_t open_when_held = loop.open();
  int on_held_status = std::system(on_held);

  // Every child sees the file within its poll period and ends its stream with [DONE].
  if (FILE* f = std::fopen(release_file, "w")) {
    std::fclose(f);
  }
  auto released = Clock::now();
  while (loop.open() > 0 && Clock::now() < released + std::chrono::seconds(60)) {
    loop.step(100);
  }
  unlink(release_file);

  std::printf(
      "{\"streams\":%d,\"delivered\":%zu,\"open_when_held\":%zu,\"all_first_delta_ms\":%.1f,"
      "\"on_held_status\":%d,\"left_open\":%zu",
      count, delivered, open_when_held, all_delivered_ms, on_held_status, loop.open());
  printSummary(loop.summary());
  std::printf("}\n");
  return 0;
}

// Samples the pool's open-stream count as often as a tenth of a millisecond allows.
class Sampler {
 public:
  explicit Sampler(codex::SlotTable& table)
      : thread_([this, &table] {
          while (!stop_.load()) {
            max_ = std::max(max_.load(), table.openCount());
            samples_++;
            std::this_thread::sleep_for(std::chrono::microseconds(100));
          }
        }) {}
  ~Sampler() { finish(); }

  void finish() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  uint32_t max() const { return max_.load(); }
  uint64_t samples() const { return samples_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<uint32_t> max_{0};
  std::atomic<uint64_t> samples_{0};
  std::thread thread_;
};

int runBurst(int port, int attempts, int wave, const char* slot_table, int limit) {
  codex::SlotTable table;
  if (auto error = codex::SlotTable::open(slot_table, table)) {
    std::fprintf(stderr, "stream-load: %s\n", error->c_str());
    return 2;
  }
  Loop loop(port);
  Sampler sampler(table);

  for (int done = 0; done < attempts; done += wave) {
    std::vector<Stream> streams(static_cast<size_t>(std::min(wave, attempts - done)));
    openAll(loop, streams);
    while (loop.open() > 0) {
      loop.step(100);
    }
  }
  sampler.finish();

  const Summary& s = loop.summary();
  int answered = 0;
  for (const auto& [status, count] : s.statuses) {
    answered += status == 200 || status == 429 ? count : 0;
  }
  std::printf(
      "{\"attempts\":%d,\"wave\":%d,\"limit\":%d,\"max_open\":%u,\"samples\":%llu,"
      "\"over_admissions\":%u,\"answered_200_or_429\":%d",
      attempts, wave, limit, sampler.max(), static_cast<unsigned long long>(sampler.samples()),
      sampler.max() > static_cast<uint32_t>(limit) ? sampler.max() - limit : 0, answered);
  printSummary(s);
  std::printf("}\n");
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: stream-load closed PORT CONCURRENCY SECONDS\n"
               "       stream-load held PORT STREAMS RELEASE_FILE DEADLINE_S ON_HELD_COMMAND\n"
               "       stream-load burst PORT ATTEMPTS WAVE SLOT_TABLE LIMIT\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    return usage();
  }
  std::string_view mode = argv[1];
  int port = std::atoi(argv[2]);

  raiseNofile();
  if (mode == "closed" && argc == 5) {
    return runClosed(port, std::atoi(argv[3]), std::atof(argv[4]));
  }
  if (mode == "held" && argc == 7) {
    return runHeld(port, std::atoi(argv[3]), argv[4], std::atof(argv[5]), argv[6]);
  }
  if (mode == "burst" && argc == 7) {
    return runBurst(port, std::atoi(argv[3]), std::atoi(argv[4]), argv[5], std::atoi(argv[6]));
  }
  return usage();
}
