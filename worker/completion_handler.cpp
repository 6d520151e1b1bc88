// POST /v1/chat/completions and /v1/completions: authentication, validation, model, context
// guard, the stream cap, then the child. A request that fails any check never spawns a child.
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include <fmt/format.h>
#include <uv.h>

#include "completion_request.hpp"
#include "completion_run.hpp"
#include "handlers.hpp"
#include "log.hpp"
#include "models.hpp"
#include "prompt.hpp"
#include "responses.hpp"
#include "text.hpp"
#include "usage_log.hpp"

namespace codex {
namespace {

// run() closes every handle it opens, so normally only the loop itself is left; a handle left
// open by a mistake is closed here rather than leaked along with the loop's descriptors.
void closeLoop(uv_loop_t& loop) {
  if (uv_loop_close(&loop) != UV_EBUSY) {
    return;
  }
  LogLine("request loop closed with handles open").error();
  uv_walk(
      &loop,
      [](uv_handle_t* handle, void*) {
        if (!uv_is_closing(handle)) {
          uv_close(handle, nullptr);
        }
      },
      nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

void logGuard(const Config& config, const HttpRequest& request, std::string_view route,
              std::string_view outcome, uint32_t before, uint32_t after) {
  LogLine(outcome == "rejected" ? "stream rejected: cap reached" : "stream slot acquired")
      .with("scope", "sse_guard")
      .with("req_id", request.request_id)
      .with("route", route)
      .with("outcome", outcome)
      .with("before", int64_t{before})
      .with("after", int64_t{after})
      .with("limit", config.sse_max_concurrency)
      .info();
}

void addConcurrencyHeaders(FcgiExchange& io, const Config& config, uint32_t before,
                           uint32_t after) {
  if (!config.test_endpoints) {
    return;
  }
  io.addHeader("X-Conc-Before", std::to_string(before));
  io.addHeader("X-Conc-After", std::to_string(after));
  io.addHeader("X-Conc-Limit", std::to_string(config.sse_max_concurrency));
}

// Keepalives are off for clients known to choke on SSE comments, or on request.
bool wantsKeepalive(const HttpRequest& request) {
  std::string agent = lower(request.user_agent);
  bool fragile =
      agent.find("obsidian") != std::string::npos || agent.find("electron") != std::string::npos;

  return !fragile && trim(request.no_keepalive) != "1" && !request.queryHas("no_keepalive", "1");
}

void addStreamHeaders(FcgiExchange& io) {
  io.addHeader("Content-Type", "text/event-stream");
  io.addHeader("Cache-Control", "no-cache, no-transform");
  io.addHeader("Connection", "keep-alive");
  // nginx honours this even where a location forgot `fastcgi_buffering off`.
  io.addHeader("X-Accel-Buffering", "no");
}

// The status the client really got, for the usage log (Q19). A stream's head says 200 before
// the outcome is known, so a stream that ended with an error frame is logged with that error's
// status; a client that left before any head was sent is logged as 499, as nginx does.
int outcomeStatus(const FcgiExchange& io, const CompletionState& state) {
  if (!io.headSent()) {
    return 499;
  }
  if (state.spec().stream && state.error()) {
    return state.error()->status;
  }
  return io.status();
}

// One usage-log line for every completion that got as far as spawning a child, whatever its
// outcome; requests refused before that (401, 400, 404, 429) are only in the access log.
void logUsage(WorkerContext& context, const HttpRequest& request, const FcgiExchange& io,
              const CompletionState& state, const ModelChoice& model, std::string_view route,
              const RunOutcome& outcome) {
  using namespace std::chrono;
  const CompletionSpec& spec = state.spec();
  Usage usage = state.usage();
  UsageEntry e;

  e.ts = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  e.req_id = request.request_id;
  e.route = route;
  e.method = request.method;
  e.requested_model = model.requested;
  e.effective_model = model.effective;
  e.stream = spec.stream;
  e.prompt_tokens = usage.prompt_tokens;
  e.completion_tokens = usage.completion_tokens;
  e.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  e.prompt_tokens_est = spec.prompt_estimate;
  e.completion_tokens_est = estimateTokens(state.content());
  e.total_tokens_est = e.prompt_tokens_est + e.completion_tokens_est;
  e.duration_ms = duration_cast<milliseconds>(steady_clock::now() - request.started).count();
  e.status = outcomeStatus(io, state);
  e.user_agent = request.user_agent;
  e.end_reason = outcome.end_reason;
  e.emission_trigger = state.emissionTrigger();
  e.counts_source = state.countsFromEvents() ? "event" : "estimate";
  e.usage_included = spec.include_usage;
  e.provider_supplied = state.providerSupplied();

  // A closed log was reported once at start-up; the client never hears of either failure.
  if (!context.usage_log.append(e) && context.usage_log.isOpen()) {
    LogLine("cannot write usage log")
        .with("req_id", request.request_id)
        .with("error", strerror(errno))
        .error();
  }
}

}  // namespace

bool authorized(const Config& config, const HttpRequest& request) {
  constexpr std::string_view kScheme = "Bearer ";
  std::string_view header = request.authorization;

  if (!header.starts_with(kScheme)) {
    return false;
  }
  std::string_view presented = header.substr(kScheme.size());
  const std::string& key = config.api_key;
  if (presented.size() != key.size()) {
    return false;
  }
  // Constant time in the key's content: no early exit on the first differing byte.
  unsigned char difference = 0;
  for (size_t i = 0; i < key.size(); ++i) {
    difference |= static_cast<unsigned char>(presented[i] ^ key[i]);
  }
  return difference == 0;
}

HandlerResult handleCompletion(WorkerContext& context, FcgiExchange& io, const HttpRequest& request,
                               Route route) {
  const Config& config = context.config;
  std::string_view route_name = route == Route::Chat ? "/v1/chat/completions" : "/v1/completions";
  HandlerResult result;

  if (!authorized(config, request)) {
    sendError(io, errors::unauthorized());
    result.end_reason = "unauthorized";
    return result;
  }
  auto parsed = route == Route::Chat ? parseChatRequest(request.body, request.hasJsonBody())
                                     : parseLegacyRequest(request.body, request.hasJsonBody());
  if (auto* error = std::get_if<ApiError>(&parsed)) {
    sendError(io, *error);
    result.end_reason = "invalid_request";
    return result;
  }
  auto& body = std::get<CompletionRequest>(parsed);
  ModelChoice model = resolveModel(body.model, body.effort, config);
  if (!model.accepted) {
    sendError(io, errors::modelNotFound(model.requested));
    result.end_reason = "invalid_request";
    return result;
  }
  int64_t prompt_estimate = estimatePromptTokens(body.messages);
  if (config.max_prompt_tokens > 0 && prompt_estimate > config.max_prompt_tokens) {
    sendError(io, errors::contextLengthExceeded());
    result.end_reason = "invalid_request";
    return result;
  }

  std::optional<StreamSlot> slot;
  if (body.stream && config.guardEnabled()) {
    auto outcome = context.slots.acquire(static_cast<uint32_t>(config.sse_max_concurrency),
                                         request.request_id);
    addConcurrencyHeaders(io, config, outcome.open_before, outcome.open_after);
    context.metrics.admission(outcome.slot.has_value());
    if (!outcome.slot) {
      logGuard(config, request, route_name, "rejected", outcome.open_before, outcome.open_after);
      io.addHeader("Retry-After", "1");
      sendError(io, errors::streamsExhausted());
      result.end_reason = "cap_reached";
      return result;
    }
    logGuard(config, request, route_name, "acquired", outcome.open_before, outcome.open_after);
    slot = std::move(outcome.slot);
  }

  CompletionSpec spec;
  spec.route = route;
  spec.stream = body.stream;
  spec.include_usage = body.include_usage;
  spec.who = {newResponseId(route == Route::Chat ? "chatcmpl-" : "cmpl-"),
              static_cast<int64_t>(time(nullptr)), model.requested};
  spec.prompt_estimate = prompt_estimate;
  spec.tools = {config.suppress_tail_after_tools, config.stop_after_tools,
                config.stop_after_tools_mode == "first", config.tool_block_max};
  CompletionState state(std::move(spec));
  ChildRequest child{request.request_id, body.messages, joinPrompt(body.messages), model};
  auto protocol = makeChildProtocol(config);
  // A loop for this request alone: an idle request thread then holds no descriptors and no
  // libuv memory, which every fork of this worker (one per child) would otherwise copy.
  // Created before any stream header, so that failing (EMFILE) is a plain error response.
  uv_loop_t loop;
  if (int rc = uv_loop_init(&loop); rc != 0) {
    LogLine("request loop could not be created")
        .with("req_id", request.request_id)
        .with("error", uv_err_name(rc))
        .warn();
    sendError(io, errors::spawnFailed(fmt::format("event loop {}", uv_err_name(rc))));
    result.end_reason = "spawn_failed";
    return result;
  }
  if (body.stream) {
    addStreamHeaders(io);
  }

  LogLine("completion")
      .with("req_id", request.request_id)
      .with("route", route_name)
      .with("requested_model", model.requested)
      .with("effective_model", model.effective)
      .with("stream", body.stream)
      .with("prompt_tokens_est", prompt_estimate)
      .info();
  RunOutcome outcome;
  {
    CompletionRun run(&loop, context, io, *protocol, std::move(child), state, std::move(slot),
                      {request.request_id, std::string(route_name), wantsKeepalive(request)});
    outcome = run.run();
  }
  closeLoop(loop);
  logUsage(context, request, io, state, model, route_name, outcome);
  result.end_reason = outcome.end_reason;
  result.child_exit = outcome.exit_status;
  result.child_signal = outcome.term_signal;
  return result;
}

}  // namespace codex
