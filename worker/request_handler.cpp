// Routing, CORS and the per-request summary line. Paths match in lowercase with at most one
// trailing slash removed, as OpenAI clients send them.
#include "request_handler.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>

#include "codex_binary.hpp"
#include "handlers.hpp"
#include "json_writer.hpp"
#include "log.hpp"
#include "models.hpp"
#include "responses.hpp"
#include "text.hpp"
#include "usage_routes.hpp"

namespace codex {
namespace {

constexpr size_t kMaxBody = 16 * 1024 * 1024;
constexpr std::string_view kDefaultAllowHeaders =
    "Authorization, Content-Type, Accept, OpenAI-Organization, OpenAI-Beta, OpenAI-Version, "
    "OpenAI-Project, X-Requested-With, X-Stainless-OS, X-Stainless-Lang, X-Stainless-Arch, "
    "X-Stainless-Runtime, X-Stainless-Runtime-Version, X-Stainless-Package-Version, "
    "X-Stainless-Timeout, X-Stainless-Retry-Count, dangerously-allow-browser, X-No-Keepalive";

// One origin policy for every response: echo the origin with credentials, or `*` without.
void addCors(FcgiExchange& io, const Config& config, const HttpRequest& request) {
  if (!config.enable_cors) {
    return;
  }
  bool has_origin = !request.origin.empty();

  io.addHeader("Access-Control-Allow-Origin", has_origin ? request.origin : "*");
  if (has_origin) {
    io.addHeader("Access-Control-Allow-Credentials", "true");
    io.addHeader("Vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method");
  } else {
    io.addHeader("Vary", "Access-Control-Request-Headers, Access-Control-Request-Method");
  }
  io.addHeader("Access-Control-Allow-Methods", "GET, POST, HEAD, OPTIONS");
  io.addHeader("Access-Control-Allow-Headers", request.request_headers.empty()
                                                   ? kDefaultAllowHeaders
                                                   : std::string_view(request.request_headers));
  io.addHeader("Access-Control-Expose-Headers", "Content-Type");
  io.addHeader("Access-Control-Max-Age", "600");
}

void sendHead(FcgiExchange& io, int status, std::string_view content_type) {
  io.addHeader("Content-Type", content_type);
  io.addHeader("Content-Length", "0");
  io.sendHead(status);
}

void writeModel(JsonWriter& w, std::string_view id) {
  w.beginObject().field("id", id).field("object", "model").field("owned_by", "codex");
  w.field("created", 0).endObject();
}

// GET /v1/models lists the advertised ids; GET /v1/models/{id} (the SDKs' retrieve) answers
// for any id a completion would accept.
void serveModels(FcgiExchange& io, const Config& config, const HttpRequest& request,
                 std::string_view id) {
  if (config.protect_models && !authorized(config, request)) {
    sendError(io, errors::unauthorized());
    return;
  }
  JsonWriter w;
  if (id.empty()) {
    w.beginObject().field("object", "list").key("data").beginArray();
    for (const auto& advertised : advertisedModels(config)) {
      writeModel(w, advertised);
    }
    w.endArray().endObject();
  } else {
    ModelChoice choice = resolveModel(id, std::nullopt, config);
    if (!choice.accepted) {
      sendError(io, errors::modelNotFound(id));
      return;
    }
    writeModel(w, choice.requested);
  }
  io.addHeader("Cache-Control", "public, max-age=60");
  if (request.method == "HEAD") {
    io.addHeader("Content-Type", "application/json; charset=utf-8");
    io.addHeader("Content-Length", std::to_string(w.str().size()));
    io.sendHead(200);
    return;
  }
  sendJson(io, 200, w.str());
}

void serveHealth(FcgiExchange& io, const Config& config) {
  JsonWriter w;
  w.beginObject().field("ok", true).field("sandbox_mode", config.sandbox_mode).endObject();
  sendJson(io, 200, w.str());
}

void serveConcurrency(FcgiExchange& io, const SlotTable& slots) {
  JsonWriter w;
  w.beginObject().field("conc", int64_t{slots.openCount()}).endObject();
  sendJson(io, 200, w.str());
}

// Writes the release file the hold-open test child waits for.
void serveRelease(FcgiExchange& io, const Config& config) {
  JsonWriter w;

  if (config.stream_release_file.empty()) {
    w.beginObject().field("ok", false).field("reason", "STREAM_RELEASE_FILE not set").endObject();
    sendJson(io, 400, w.str());
    return;
  }
  auto now = std::chrono::system_clock::now().time_since_epoch();
  std::ofstream out(config.stream_release_file, std::ios::trunc);
  out << std::chrono::duration_cast<std::chrono::milliseconds>(now).count();
  out.close();
  if (!out) {
    w.beginObject().field("ok", false).field("error", strerror(errno)).endObject();
    sendJson(io, 500, w.str());
    return;
  }
  w.beginObject().field("ok", true).endObject();
  sendJson(io, 200, w.str());
}

// Readiness is what this worker can check for itself: it accepts (it is answering), it is not
// draining, its slot table is attached, and the child binary can be executed.
void serveReadiness(FcgiExchange& io, WorkerContext& context) {
  std::string binary_error;
  bool draining = context.draining;
  bool slots = context.slots.ownerIndex() >= 0;
  bool binary = resolveBinary(context.config.codex_bin, binary_error).has_value();
  bool ready = !draining && slots && binary;
  JsonWriter w;

  w.beginObject().field("ready", ready).key("checks").beginObject();
  w.field("accepting", !draining).field("slot_table", slots).field("child_binary", binary);
  w.endObject();
  if (!binary) {
    w.field("reason", binary_error);
  } else if (draining) {
    w.field("reason", "worker is shutting down");
  }
  w.endObject();
  sendJson(io, ready ? 200 : 503, w.str());
}

bool isLoopback(std::string_view address) {
  return address.starts_with("127.") || address == "::1" || address.starts_with("::ffff:127.");
}

// Off unless PROXY_ENABLE_METRICS; then the bearer key, or a loopback client when
// PROXY_METRICS_LOOPBACK allows it (a scraper on the same host needs no secret).
void serveMetrics(FcgiExchange& io, WorkerContext& context, const HttpRequest& request) {
  const Config& config = context.config;

  if (!config.enable_metrics) {
    sendError(io, errors::notFound(request.method, request.path));
    return;
  }
  bool local = config.metrics_loopback && isLoopback(request.remote_addr);
  if (!local && !authorized(config, request)) {
    sendError(io, errors::unauthorized());
    return;
  }
  MetricsGauges gauges;
  gauges.open_streams = context.slots.openCount();
  gauges.stream_limit = config.guardEnabled() ? config.sse_max_concurrency : 0;
  std::string text = context.metrics.page() != nullptr
                         ? renderMetrics(*context.metrics.page(), gauges)
                         : std::string();
  io.addHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  io.addHeader("Cache-Control", "no-store");
  io.addHeader("Content-Length", std::to_string(text.size()));
  io.sendHead(200);
  if (request.method != "HEAD") {
    io.send(text, true);
  }
}

bool isTestRoute(std::string_view path) {
  return path.starts_with("/__test/");
}

bool isCompletionRoute(std::string_view path) {
  return path == "/v1/chat/completions" || path == "/v1/completions";
}

// Every completion request counts, before authentication, keyed by the bearer text (valid or
// not) or else the client's address; paths are already normalised, so no spelling escapes it.
bool rateLimited(WorkerContext& context, FcgiExchange& io, const HttpRequest& request) {
  const Config& config = context.config;
  constexpr std::string_view kScheme = "Bearer ";
  std::string_view auth = request.authorization;

  if (!context.rate_limiter || request.method != "POST" || !isCompletionRoute(request.path)) {
    return false;
  }
  bool has_key = auth.starts_with(kScheme) && auth.size() > kScheme.size();
  std::string key =
      has_key ? "key:" + std::string(auth.substr(kScheme.size())) : "addr:" + request.remote_addr;
  auto now = std::chrono::system_clock::now().time_since_epoch();
  RateDecision decision =
      context.rate_limiter->hit(key, config.rate_limit_window_ms, config.rate_limit_max,
                                std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
  if (decision.allowed) {
    return false;
  }
  context.metrics.rateLimited();
  io.addHeader("Retry-After", std::to_string(decision.retry_after_s));
  sendError(io, errors::rateLimited());
  return true;
}

HandlerResult route(WorkerContext& context, FcgiExchange& io, const HttpRequest& request) {
  const Config& config = context.config;
  const std::string& m = request.method;
  const std::string& p = request.path;

  if (rateLimited(context, io, request)) {
    return {"rate_limited"};
  }
  if (m == "OPTIONS") {
    io.sendHead(204);  // preflight: no auth, no body
  } else if (p == "/healthz" && (m == "GET" || m == "HEAD")) {
    serveHealth(io, config);
  } else if (p == "/livez" && (m == "GET" || m == "HEAD")) {
    sendJson(io, 200, R"({"live":true})");
  } else if (p == "/readyz" && (m == "GET" || m == "HEAD")) {
    serveReadiness(io, context);
  } else if (p == "/metrics" && (m == "GET" || m == "HEAD")) {
    serveMetrics(io, context, request);
  } else if (p == "/v1/models" && (m == "GET" || m == "HEAD")) {
    serveModels(io, config, request, "");
  } else if (p.starts_with("/v1/models/") && (m == "GET" || m == "HEAD")) {
    serveModels(io, config, request, std::string_view(p).substr(11));
  } else if ((p == "/v1/chat/completions" || p == "/v1/completions") && m == "HEAD") {
    sendHead(io, 200, "application/json; charset=utf-8");
  } else if (p == "/v1/chat/completions" && m == "POST") {
    return handleCompletion(context, io, request, Route::Chat);
  } else if (p == "/v1/completions" && m == "POST") {
    return handleCompletion(context, io, request, Route::Legacy);
  } else if (p == "/v1/usage" && m == "GET") {
    serveUsage(io, config, request);
  } else if (p == "/v1/usage/raw" && m == "GET") {
    serveUsageRaw(io, config, request);
  } else if (isTestRoute(p) && config.test_endpoints && !authorized(config, request)) {
    sendError(io, errors::unauthorized());
  } else if (p == "/__test/conc" && m == "GET" && config.test_endpoints) {
    serveConcurrency(io, context.slots);
  } else if (p == "/__test/conc/release" && m == "POST" && config.test_endpoints) {
    serveRelease(io, config);
  } else {
    sendError(io, errors::notFound(m, p));
  }
  return {};
}

void logSummary(const HttpRequest& request, const FcgiExchange& io, const HandlerResult& result) {
  auto elapsed = std::chrono::steady_clock::now() - request.started;
  auto ms = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count() / 1000.0;

  LogLine("request")
      .with("kind", "access")
      .with("req_id", request.request_id)
      .with("method", request.method)
      .with("path", request.path)
      .with("status", int64_t{io.status()})
      .with("end_reason", result.end_reason)
      .with("bytes", uint64_t{io.bodyBytes()})
      .with("dur_ms", static_cast<int64_t>(ms))
      .with("child_exit", result.child_exit)
      .with("child_signal", int64_t{result.child_signal})
      .with("auth", request.authorization.empty() ? "none" : "present")
      .with("ua", request.user_agent)
      .info();
}

}  // namespace

void serveRequest(WorkerContext& context, FCGX_Request& raw) {
  FcgiExchange io(raw);
  HttpRequest request = readRequest(io);
  HandlerResult result;

  request.path = lower(request.path);
  io.onFinish([&context, route = metricRouteFor(request.path)](int status) {
    context.metrics.request(route, status);
  });
  if (request.method != "OPTIONS") {
    io.addHeader("X-Request-Id", request.request_id);
  }
  io.addHeader("X-Worker-Pid", std::to_string(getpid()));
  addCors(io, context.config, request);

  // The body is always read to its end: an unread FastCGI stdin record would make the
  // connection look readable, which is how we notice clients that have gone.
  switch (io.readBody(request.body, kMaxBody)) {
    case BodyRead::TooLarge:
      sendError(io, errors::bodyTooLarge());
      result.end_reason = "body_too_large";
      break;
    case BodyRead::Failed:
      result.end_reason = "client_gone";
      break;
    case BodyRead::Ok:
      result = route(context, io, request);
  }
  io.finish();
  if (request.method != "OPTIONS") {
    logSummary(request, io, result);
  }
}

}  // namespace codex
