// FastCGI exchange; see fcgi_exchange.hpp.
#include "fcgi_exchange.hpp"

#include "openai.hpp"

namespace codex {

std::string FcgiExchange::param(const char* name) const {
  const char* value = FCGX_GetParam(name, request_.envp);
  return value != nullptr ? value : "";
}

BodyRead FcgiExchange::readBody(std::string& body, size_t limit) {
  char buffer[16384];
  int n;

  while ((n = FCGX_GetStr(buffer, sizeof(buffer), request_.in)) > 0) {
    if (body.size() + static_cast<size_t>(n) > limit) {
      return BodyRead::TooLarge;
    }
    body.append(buffer, static_cast<size_t>(n));
  }
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
