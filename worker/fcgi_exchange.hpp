// One FastCGI request/response exchange on top of libfcgi's FCGX_Request.
//
// libfcgi's write calls report success after the stream has failed (the error is sticky and
// only FCGX_GetError tells the truth), so every write here checks it, and a failed exchange
// stays failed.
#pragma once

#include <fcgiapp.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace codex {

enum class BodyRead { Ok, TooLarge, Failed };

class FcgiExchange {
 public:
  explicit FcgiExchange(FCGX_Request& request) : request_(request) {}
  FcgiExchange(const FcgiExchange&) = delete;
  FcgiExchange& operator=(const FcgiExchange&) = delete;

  std::string param(const char* name) const;
  BodyRead readBody(std::string& body, size_t limit);

  // The connection to nginx, watched to notice a client that has gone. This reads a field
  // fcgiapp.h calls internal; Debian pins libfcgi 2.4.2 whose struct layout is stable.
  int connectionFd() const { return request_.ipcFd; }

  void addHeader(std::string_view name, std::string_view value);
  // Writes the Status line and the headers collected so far.
  bool sendHead(int status);
  bool send(std::string_view bytes, bool flush);
  // Writes out whatever send() left buffered; false once the exchange has failed.
  bool flush();

  // Ends the request towards nginx (END_REQUEST, close). Idempotent.
  void finish();
  // Runs once, with the status, just before the request ends: whatever it records is in place
  // before the client can see the end and send its next request.
  void onFinish(std::function<void(int status)> hook) { on_finish_ = std::move(hook); }

  bool headSent() const { return head_sent_; }
  bool failed() const { return failed_; }
  bool finished() const { return finished_; }
  size_t bodyBytes() const { return body_bytes_; }
  int status() const { return status_; }

 private:
  bool checkWrite();

  FCGX_Request& request_;
  std::string head_;
  bool head_sent_ = false;
  bool failed_ = false;
  bool finished_ = false;
  size_t body_bytes_ = 0;
  int status_ = 0;
  std::function<void(int)> on_finish_;
};

}  // namespace codex
