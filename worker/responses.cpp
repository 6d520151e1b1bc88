// JSON responses always carry Content-Length so nginx need not chunk them.
#include "responses.hpp"

#include <string>

namespace codex {

void sendJson(FcgiExchange& io, int status, std::string_view body) {
  io.addHeader("Content-Type", "application/json; charset=utf-8");
  io.addHeader("Content-Length", std::to_string(body.size()));
  if (io.sendHead(status)) {
    io.send(body, true);
  }
}

void sendError(FcgiExchange& io, const ApiError& error) {
  if (error.status == 401) {
    io.addHeader("WWW-Authenticate", "Bearer realm=api");
  }
  sendJson(io, error.status, errorBody(error));
}

}  // namespace codex
