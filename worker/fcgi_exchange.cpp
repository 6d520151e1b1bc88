// FastCGI exchange; see fcgi_exchange.hpp.
#include "fcgi_exchange.hpp"

#include <algorithm>

#include "openai.hpp"

namespace codex {

std::string FcgiExchange::param(const char* name) const {
  const char* value = FCGX_GetParam(name, request_.envp);
  return value != nullptr ? value : "";
}

// Read straight into the body: a buffer on the stack would stay resident in every request
// thread's stack for good, and an open stream holds a thread.
BodyRead FcgiExchange::readBody(std::string& body, size_t limit) {
  constexpr size_t kChunk = 4096;
  int n;

  do {
    size_t used = body.size();
    body.resize(used + kChunk);
    n = FCGX_GetStr(body.data() + used, static_cast<int>(kChunk), request_.in);
    body.resize(used + static_cast<size_t>(std::max(n, 0)));
    if (body.size() > limit) {
      return BodyRead::TooLarge;
    }
  } while (n > 0);
  return FCGX_GetError(request_.in) != 0 ? BodyRead::Failed : BodyRead::Ok;
}

void FcgiExchange::addHeader(std::string_view name, std::string_view value) {
  head_ += name;
  head_ += ": ";
  head_ += value;
  head_ += "\r\n";
}

bool FcgiExchange::sendHead(int status) {
  std::string block = "Status: " + statusLine(status) + "\r\n" + head_ + "\r\n";

  status_ = status;
  head_sent_ = true;
  head_.clear();
  if (failed_ || finished_) {
    return false;
  }
  FCGX_PutStr(block.data(), static_cast<int>(block.size()), request_.out);
  return checkWrite();
}

bool FcgiExchange::send(std::string_view bytes, bool flush) {
  if (failed_ || finished_) {
    return false;
  }
  FCGX_PutStr(bytes.data(), static_cast<int>(bytes.size()), request_.out);
  body_bytes_ += bytes.size();
  if (flush) {
    FCGX_FFlush(request_.out);
  }
  return checkWrite();
}

bool FcgiExchange::flush() {
  if (failed_ || finished_) {
    return !failed_;
  }
  FCGX_FFlush(request_.out);
  return checkWrite();
}

bool FcgiExchange::checkWrite() {
  if (FCGX_GetError(request_.out) != 0) {
    failed_ = true;
  }
  return !failed_;
}

void FcgiExchange::finish() {
  if (finished_) {
    return;
  }
  finished_ = true;
  if (on_finish_) {
    on_finish_(status_);
  }
  FCGX_Finish_r(&request_);
}

}  // namespace codex
