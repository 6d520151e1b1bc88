// The parts of a FastCGI request the gateway looks at, copied out of libfcgi's parameter block
// (which is freed as soon as the response ends, possibly before the child has exited).
#pragma once

#include <chrono>
#include <string>

#include "fcgi_exchange.hpp"

namespace codex {

struct HttpRequest {
  std::string method;
  std::string path;  // without query, one trailing slash removed
  std::string query;
  std::string content_type;
  std::string authorization;
  std::string origin;
  std::string user_agent;
  std::string request_id;
  std::string remote_addr;
  std::string request_headers;  // Access-Control-Request-Headers
  std::string no_keepalive;     // X-No-Keepalive
  std::string body;
  std::chrono::steady_clock::time_point started;

  bool hasJsonBody() const;
  bool queryHas(std::string_view name, std::string_view value) const;
};

HttpRequest readRequest(const FcgiExchange& io);

}  // namespace codex
