// The `codex app-server` wire protocol: JSON-RPC over stdio, one JSON object per line.
//
// One process serves one request: initialize, initialized, thread/start (ephemeral, the system
// messages as baseInstructions), thread/inject_items for earlier turns, turn/start with the last
// message; then deltas, usage and turn/completed come back as notifications. Each step waits
// for the previous response, because the thread id only exists once thread/start answers.
#include <simdjson.h>

#include <functional>

#include "child_protocol.hpp"
#include "json_count.hpp"
#include "json_parsers.hpp"
#include "json_writer.hpp"

namespace codex {
namespace {

using simdjson::dom::element;

enum RequestId : int64_t { kInitialize = 1, kThreadStart = 2, kInjectItems = 3, kTurnStart = 4 };

// Notifications the gateway never reads; opting out saves the child work and us parsing.
constexpr const char* kIgnoredNotifications[] = {
    "thread/started",        "remoteControl/status/changed",
    "configWarning",         "account/rateLimits/updated",
    "thread/status/changed", "item/started"};

std::optional<element> at(element root, const char* pointer) {
  element value;
  if (root.at_pointer(pointer).get(value) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  return value;
}

std::string textAt(element root, const char* pointer) {
  std::string_view text;
  auto value = at(root, pointer);
  return value && value->get(text) == simdjson::SUCCESS ? std::string(text) : "";
}

std::optional<int64_t> countAt(element root, const char* pointer) {
  auto value = at(root, pointer);
  return value ? countValue(*value) : std::nullopt;
}

bool isInstruction(const ChatMessage& m) {
  return m.role == "system" || m.role == "developer";
}

// codexErrorInfo is a bare string ("internalServerError") or an object with one key whose value
// may carry the upstream's HTTP status.
std::pair<std::string, std::optional<int64_t>> errorInfo(element error) {
  std::string_view kind;
  auto info = at(error, "/codexErrorInfo");

  if (!info) {
    return {"", std::nullopt};
  }
  if (info->get(kind) == simdjson::SUCCESS) {
    return {std::string(kind), std::nullopt};
  }
  simdjson::dom::object fields;
  if (info->get(fields) != simdjson::SUCCESS || fields.size() == 0) {
    return {"", std::nullopt};
  }
  auto field = *fields.begin();
  return {std::string(field.key), countAt(field.value, "/httpStatusCode")};
}

// What the client sees for an upstream failure: its own fault (400), a limit it can wait out
// (429), or our backend's failure (502/503), never the upstream's credentials problem as a 401.
ApiError classifyError(std::string message, const std::string& kind, std::optional<int64_t> http) {
  if (kind == "contextWindowExceeded") {
    return {400, "invalid_request_error", "context_length_exceeded", message, "messages"};
  }
  if (kind == "badRequest" || http == 400) {
    return {400, "invalid_request_error", "upstream_bad_request", message, std::nullopt};
  }
  if (kind == "usageLimitExceeded" || kind == "rateLimitExceeded" || http == 429) {
    return {429, "rate_limit_error", "upstream_rate_limited", message, std::nullopt};
  }
  if (kind == "modelNotFound") {
    return {404, "invalid_request_error", "model_not_found", message, "model"};
  }
  if (kind == "serverOverloaded" || http == 503) {
    return {503, "server_error", "upstream_overloaded", message, std::nullopt};
  }
  return {502, "server_error", "backend_error", message, std::nullopt};
}

ChildEvent errorEvent(element error) {
  auto [kind, http] = errorInfo(error);
  std::string message = textAt(error, "/message");
  ChildEvent event;

  event.kind = ChildEvent::Kind::Error;
  event.text = message.empty() ? "backend reported an error" : message;
  event.error = classifyError(event.text, kind, http);
  return event;
}

class AppServerProtocol : public ChildProtocol {
 public:
  explicit AppServerProtocol(const Config& config) : config_(config) {}

  std::vector<std::string> arguments(const ChildRequest& request) const override;
  std::string openingInput(const ChildRequest& request) override;
  std::optional<ChildEvent> parseLine(std::string_view line, std::string& reply) override;
  std::string interruptInput() override;
  bool endsOnStdinClose() const override { return true; }

 private:
  ChildEvent onResponse(int64_t id, element root, std::string& reply);
  ChildEvent onNotification(std::string_view method, element params);
  ChildEvent onError(element params);
  std::string request(int64_t id, std::string_view method,
                      const std::function<void(JsonWriter&)>& params) const;
  std::string threadStart() const;
  std::string injectItems() const;
  std::string turnStart() const;

  const Config& config_;
  ChildRequest request_;
  std::string thread_id_;
  std::string turn_id_;
  bool turn_started_ = false;
  bool turn_done_ = false;
  bool saw_delta_ = false;
};

std::vector<std::string> AppServerProtocol::arguments(const ChildRequest& request) const {
  std::vector<std::string> args = {"app-server"};
  auto set = [&args](std::string key_value) {
    args.push_back("-c");
    args.push_back(std::move(key_value));
  };

  if (config_.codex_hygiene) {
    for (const char* feature : {"plugins", "shell_snapshot", "unbounded_connection_retries"}) {
      args.push_back("--disable");
      args.push_back(feature);
    }
    set("analytics.enabled=false");
    set("check_for_update_on_startup=false");
  }
  if (!config_.provider_base_url.empty()) {
    // A custom provider: the built-in one tries WebSockets first and ignores OPENAI_API_KEY.
    set("model_providers.gateway.name=gateway");
    set("model_providers.gateway.base_url=\"" + config_.provider_base_url + "\"");
    set("model_providers.gateway.wire_api=\"responses\"");
    // A broken stream is never retried: Codex would replay text the client already has.
    set("model_providers.gateway.stream_max_retries=0");
    set("model_providers.gateway.request_max_retries=" +
        std::to_string(config_.provider_request_retries));
    if (!config_.provider_api_key.empty()) {
      set("model_providers.gateway.env_key=\"CODEX_PROVIDER_API_KEY\"");
    }
    set("model_provider=\"gateway\"");
  } else if (!config_.force_provider.empty()) {
    set("model_provider=\"" + config_.force_provider + "\"");
  }
  set("model=\"" + request.model.effective + "\"");
  if (!request.model.effort.empty()) {
    set("model_reasoning_effort=\"" + request.model.effort + "\"");
  }
  // The operator's own settings come last: for Codex the last -c of a key wins.
  for (const auto& override : config_.codex_overrides) {
    set(override);
  }
  return args;
}

std::string AppServerProtocol::request(int64_t id, std::string_view method,
                                       const std::function<void(JsonWriter&)>& params) const {
  JsonWriter w;

  w.beginObject().field("id", id).field("method", method).key("params").beginObject();
  params(w);
  w.endObject().endObject();
  return w.take() + "\n";
}

std::string AppServerProtocol::openingInput(const ChildRequest& request) {
  request_ = request;  // kept for the steps that follow the handshake
  return this->request(kInitialize, "initialize", [](JsonWriter& w) {
    w.key("clientInfo").beginObject();
    w.field("name", "codex_gateway").field("title", "codex-gateway").field("version", "0.1");
    w.endObject();
    w.key("capabilities").beginObject().key("optOutNotificationMethods").beginArray();
    for (const char* method : kIgnoredNotifications) {
      w.value(method);
    }
    w.endArray().endObject();
  });
}

std::string AppServerProtocol::threadStart() const {
  std::string instructions;
  for (const auto& m : request_.messages) {
    if (isInstruction(m)) {
      instructions += (instructions.empty() ? "" : "\n\n") + m.content;
    }
  }
  return request(kThreadStart, "thread/start", [&](JsonWriter& w) {
    w.field("cwd", config_.codex_workdir).field("ephemeral", true);
    w.field("approvalPolicy", "never").field("sandbox", config_.sandbox_mode);
    if (!instructions.empty()) {
      w.field("baseInstructions", instructions);
    }
  });
}

// Every message between the instructions and the last one is history.
std::string AppServerProtocol::injectItems() const {
  JsonWriter w;
  size_t count = 0;

  w.beginArray();
  for (size_t i = 0; i + 1 < request_.messages.size(); ++i) {
    const auto& m = request_.messages[i];
    if (isInstruction(m)) {
      continue;
    }
    bool assistant = m.role == "assistant";
    w.beginObject().field("type", "message").field("role", assistant ? "assistant" : "user");
    w.key("content").beginArray().beginObject();
    w.field("type", assistant ? "output_text" : "input_text").field("text", m.content);
    w.endObject().endArray().endObject();
    ++count;
  }
  w.endArray();
  if (count == 0) {
    return "";
  }
  return request(kInjectItems, "thread/inject_items",
                 [&](JsonWriter& p) { p.field("threadId", thread_id_).key("items").raw(w.str()); });
}

std::string AppServerProtocol::turnStart() const {
  const auto& messages = request_.messages;
  bool last_is_turn = !messages.empty() && !isInstruction(messages.back());
  // Only instructions: send them all as the turn so the model still has something to answer.
  std::string text = last_is_turn ? messages.back().content : request_.prompt;

  return request(kTurnStart, "turn/start", [&](JsonWriter& w) {
    w.field("threadId", thread_id_);
    w.key("input").beginArray().beginObject().field("type", "text").field("text", text);
    w.endObject().endArray();
  });
}

std::optional<ChildEvent> AppServerProtocol::parseLine(std::string_view line, std::string& reply) {
  ParserLease lease;  // root and everything read from it live in the leased parser
  element root;

  if (lease.parser().parse(line.data(), line.size()).get(root) != simdjson::SUCCESS ||
      !root.is_object()) {
    return std::nullopt;
  }
  auto id = countAt(root, "/id");
  std::string method = textAt(root, "/method");
  if (id && !method.empty()) {
    // A request from the server (an approval, say): with approvals off none should come, and
    // an unanswered one would stall the turn, so refuse it.
    JsonWriter w;
    w.beginObject().field("id", *id).key("error").beginObject();
    w.field("code", -32601)
        .field("message", "not supported by the gateway")
        .endObject()
        .endObject();
    reply += w.take() + "\n";
    return ChildEvent{};
  }
  if (id) {
    return onResponse(*id, root, reply);
  }
  auto params = at(root, "/params");
  return params ? onNotification(method, *params) : ChildEvent{};
}

ChildEvent AppServerProtocol::onResponse(int64_t id, element root, std::string& reply) {
  if (auto error = at(root, "/error")) {
    ChildEvent event = errorEvent(*error);
    event.text = "backend refused " + std::to_string(id) + ": " + event.text;
    event.error = errors::backend(event.text);
    return event;
  }
  switch (id) {
    case kInitialize:
      reply += "{\"method\":\"initialized\"}\n" + threadStart();
      break;
    case kThreadStart: {
      thread_id_ = textAt(root, "/result/thread/id");
      std::string inject = injectItems();
      reply += inject.empty() ? turnStart() : inject;
      break;
    }
    case kInjectItems:
      reply += turnStart();
      break;
    case kTurnStart:
      turn_id_ = textAt(root, "/result/turn/id");
      turn_started_ = true;
      break;
  }
  return ChildEvent{};
}

ChildEvent AppServerProtocol::onNotification(std::string_view method, element params) {
  ChildEvent event;

  if (method == "item/agentMessage/delta") {
    saw_delta_ = true;
    event.kind = ChildEvent::Kind::MessageDelta;
    event.text = textAt(params, "/delta");
  } else if (method == "item/completed" && textAt(params, "/item/type") == "agentMessage") {
    event.kind = ChildEvent::Kind::Message;
    event.text = textAt(params, "/item/text");
  } else if (method == "thread/tokenUsage/updated") {
    // One thread per request, so the thread's running total is this request's usage.
    event.kind = ChildEvent::Kind::TokenCount;
    event.prompt_tokens = countAt(params, "/tokenUsage/total/inputTokens");
    event.completion_tokens = countAt(params, "/tokenUsage/total/outputTokens");
  } else if (method == "error") {
    return onError(params);
  } else if (method == "turn/completed") {
    turn_done_ = true;
    std::string status = textAt(params, "/turn/status");
    if (status == "failed") {
      auto error = at(params, "/turn/error");
      return error ? errorEvent(*error) : errorEvent(params);
    }
    event.kind = ChildEvent::Kind::TaskComplete;
    event.text = status == "completed" ? "stop" : "length";  // interrupted: the answer is cut
  }
  return event;
}

// An error the child will retry is news only if text was already sent: the retry would replay
// it from the start, so the request ends here instead of sending it twice.
ChildEvent AppServerProtocol::onError(element params) {
  bool will_retry = false;
  auto flag = at(params, "/willRetry");
  if (flag && flag->get(will_retry) != simdjson::SUCCESS) {
    will_retry = false;
  }
  auto error = at(params, "/error");
  if (will_retry && !saw_delta_) {
    return ChildEvent{};
  }
  ChildEvent event = error ? errorEvent(*error) : errorEvent(params);
  if (will_retry) {
    event.text = "the upstream stream broke after text was sent: " + event.text;
    event.error = errors::backend(event.text);
  }
  return event;
}

std::string AppServerProtocol::interruptInput() {
  if (!turn_started_ || turn_done_) {
    return "";
  }
  return request(5, "turn/interrupt",
                 [&](JsonWriter& w) { w.field("threadId", thread_id_).field("turnId", turn_id_); });
}

}  // namespace

std::unique_ptr<ChildProtocol> makeAppServerProtocol(const Config& config) {
  return std::make_unique<AppServerProtocol>(config);
}

std::unique_ptr<ChildProtocol> makeChildProtocol(const Config& config) {
  if (config.codex_backend == "proto") {
    return makeProtoProtocol(config);
  }
  return makeAppServerProtocol(config);
}

}  // namespace codex
