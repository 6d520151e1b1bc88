// A small libcurl client for the tests: whole responses, and streams watched while they run.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace codex::test {

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool transport_error = false;

  std::string header(const std::string& name) const;
  bool hasHeader(const std::string& name) const { return headers.count(name) > 0; }
};

using Headers = std::vector<std::string>;

Response request(const std::string& method, const std::string& url, const std::string& body = "",
                 const Headers& headers = {});

// Runs one request on its own thread so a test can watch the body grow or drop the connection.
class StreamClient {
 public:
  StreamClient(std::string url, std::string body, Headers headers);
  ~StreamClient();
  StreamClient(const StreamClient&) = delete;
  StreamClient& operator=(const StreamClient&) = delete;

  // Waits until the response so far satisfies `ready`; false at the deadline.
  bool waitFor(const std::function<bool(const Response&)>& ready,
               std::chrono::milliseconds deadline = std::chrono::seconds(10));
  bool waitForHeaders(std::chrono::milliseconds deadline = std::chrono::seconds(10));
  bool waitForBody(const std::string& needle,
                   std::chrono::milliseconds deadline = std::chrono::seconds(10));
  // Closes the connection from the client side, as a user hitting Ctrl-C would.
  void abort();
  // Waits for the end of the response.
  Response finish();
  Response snapshot();

 private:
  static size_t onHeader(char* data, size_t size, size_t count, void* self);
  static size_t onBody(char* data, size_t size, size_t count, void* self);
  void run();

  std::string url_;
  std::string body_;
  Headers headers_;
  std::mutex mutex_;
  std::condition_variable changed_;
  Response response_;
  bool headers_done_ = false;
  bool done_ = false;
  bool abort_ = false;
  int socket_ = -1;
  std::thread thread_;
};

// JSON POST with the bearer key.
Headers jsonHeaders(const std::string& api_key);

// SSE `data:` payloads of a body, in order (comments skipped).
std::vector<std::string> sseData(const std::string& body);

}  // namespace codex::test
