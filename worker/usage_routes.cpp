// Usage endpoints; see usage_routes.hpp. The parsing and shaping live in shared/usage_log.
#include "usage_routes.hpp"

#include <chrono>
#include <fstream>
#include <sstream>

#include "handlers.hpp"
#include "responses.hpp"
#include "usage_log.hpp"

namespace codex {
namespace {

// The whole log, read once per request (the cost is noted in usage_log.hpp). A missing or
// unreadable file is an empty log.
std::string readLog(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;

  text << in.rdbuf();
  return text.str();
}

int64_t nowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

void serveUsage(FcgiExchange& io, const Config& config, const HttpRequest& request) {
  if (!authorized(config, request)) {
    sendError(io, errors::unauthorized());
    return;
  }
  auto query = parseUsageQuery(request.query, nowMs());

  if (auto* error = std::get_if<ApiError>(&query)) {
    sendError(io, *error);
    return;
  }
  sendJson(io, 200, usageSummaryBody(readLog(config.token_log_path), std::get<UsageQuery>(query)));
}

void serveUsageRaw(FcgiExchange& io, const Config& config, const HttpRequest& request) {
  if (!authorized(config, request)) {
    sendError(io, errors::unauthorized());
    return;
  }
  int64_t limit = parseRawLimit(request.query);

  sendJson(io, 200, usageRawBody(readLog(config.token_log_path), limit));
}

}  // namespace codex
