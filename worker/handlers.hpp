// Route handlers. Each writes a complete response and returns what the summary line reports.
#pragma once

#include <string>

#include "completion_state.hpp"
#include "fcgi_exchange.hpp"
#include "http_request.hpp"
#include "worker_context.hpp"

namespace codex {

struct HandlerResult {
  std::string end_reason = "done";
  int64_t child_exit = -1;
  int child_signal = 0;
};

bool authorized(const Config& config, const HttpRequest& request);

HandlerResult handleCompletion(WorkerContext& context, FcgiExchange& io, const HttpRequest& request,
                               Route route);

}  // namespace codex
