// OpenAI shapes; see openai.hpp. Field order follows OpenAI's own responses so transcripts diff
// cleanly against theirs.
#include "openai.hpp"

#include <fmt/format.h>

#include <random>

#include "json_writer.hpp"

namespace codex {
namespace errors {

ApiError unauthorized() {
  return {401, "authentication_error", "invalid_api_key", "unauthorized", std::nullopt};
}

ApiError messagesRequired() {
  return {400, "invalid_request_error", "invalid_request_error", "messages[] required", "messages"};
}

ApiError promptRequired() {
  return {400, "invalid_request_error", "invalid_request_error", "prompt required", "prompt"};
}

ApiError nUnsupported() {
  return {400, "invalid_request_error", "invalid_request_error", "n>1 is unsupported", "n"};
}

ApiError modelNotFound(std::string_view requested) {
  return {404, "invalid_request_error", "model_not_found",
          fmt::format("The model {} does not exist or you do not have access to it.", requested),
          "model"};
}

ApiError contextLengthExceeded() {
  return {403, "tokens_exceeded_error", "context_length_exceeded", "context length exceeded",
          "messages"};
}

ApiError invalidJson(std::string_view detail) {
  return {400, "invalid_request_error", "invalid_json",
          fmt::format("request body is not valid JSON: {}", detail), std::nullopt};
}

ApiError invalidField(std::string_view param, std::string_view message) {
  return {400, "invalid_request_error", "invalid_request_error", std::string(message),
          std::string(param)};
}

ApiError bodyTooLarge() {
  return {413, "invalid_request_error", "request_entity_too_large", "request body exceeds 16 MiB",
          std::nullopt};
}

ApiError notFound(std::string_view method, std::string_view path) {
  return {404, "invalid_request_error", "not_found",
          fmt::format("no route for {} {}", method, path), std::nullopt};
}

ApiError streamsExhausted() {
  return {429, "rate_limit_error", "concurrency_exceeded", "too many concurrent streams",
          std::nullopt};
}

ApiError rateLimited() {
  return {429, "rate_limit_error", "rate_limited", "rate limit exceeded", std::nullopt};
}

ApiError shuttingDown() {
  return {503, "server_error", "server_shutdown", "the gateway is shutting down", std::nullopt};
}

ApiError requestTimeout() {
  return {504, "timeout_error", "request_timeout", "request timeout", std::nullopt};
}

ApiError idleTimeout() {
  return {504, "timeout_error", "idle_timeout", "backend idle timeout", std::nullopt};
}

ApiError backend(std::string_view message) {
  return {502, "server_error", "backend_error", std::string(message), std::nullopt};
}

ApiError spawnFailed(std::string_view message) {
  return {500, "server_error", "spawn_error", std::string(message), std::nullopt};
}

}  // namespace errors

std::string errorBody(const ApiError& error) {
  JsonWriter w;

  w.beginObject().key("error").beginObject();
  w.field("message", error.message).field("type", error.type);
  if (error.param) {
    w.field("param", *error.param);
  }
  w.field("code", error.code);
  w.endObject().endObject();
  return w.take();
}

std::string statusLine(int status) {
  std::string_view reason;

  switch (status) {
    case 200:
      reason = "OK";
      break;
    case 204:
      reason = "No Content";
      break;
    case 400:
      reason = "Bad Request";
      break;
    case 401:
      reason = "Unauthorized";
      break;
    case 403:
      reason = "Forbidden";
      break;
    case 404:
      reason = "Not Found";
      break;
    case 405:
      reason = "Method Not Allowed";
      break;
    case 413:
      reason = "Payload Too Large";
      break;
    case 429:
      reason = "Too Many Requests";
      break;
    case 500:
      reason = "Internal Server Error";
      break;
    case 502:
      reason = "Bad Gateway";
      break;
    case 503:
      reason = "Service Unavailable";
      break;
    case 504:
      reason = "Gateway Timeout";
      break;
    default:
      reason = "Unknown";
  }
  return fmt::format("{} {}", status, reason);
}

std::string newResponseId(std::string_view prefix) {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id(prefix);

  uint64_t bits = 0;
  for (int i = 0; i < 24; ++i) {
    if (i % 10 == 0) {
      bits = rng();  // ten 6-bit characters per 64 random bits
    }
    id.push_back(kAlphabet[bits & 63]);
    bits >>= 6;
  }
  return id;
}

namespace {

void beginEnvelope(JsonWriter& w, const ResponseIdentity& who, std::string_view object) {
  w.beginObject();
  w.field("id", who.id).field("object", object).field("created", who.created);
  w.field("model", who.model);
}

void writeUsage(JsonWriter& w, const Usage& usage) {
  w.key("usage").beginObject();
  w.field("prompt_tokens", usage.prompt_tokens);
  w.field("completion_tokens", usage.completion_tokens);
  w.field("total_tokens", usage.prompt_tokens + usage.completion_tokens);
}

std::string chatChunk(const ResponseIdentity& who, std::string_view delta_key,
                      std::string_view delta_value, const char* finish_reason) {
  JsonWriter w;

  beginEnvelope(w, who, "chat.completion.chunk");
  w.key("choices").beginArray().beginObject().field("index", 0);
  w.key("delta").beginObject();
  if (!delta_key.empty()) {
    w.field(delta_key, delta_value);
  }
  w.endObject();
  w.key("finish_reason");
  finish_reason ? w.value(finish_reason) : w.null();
  w.endObject().endArray();
  w.key("usage").null();
  w.endObject();
  return w.take();
}

}  // namespace

std::string chatCompletionBody(const ResponseIdentity& who, std::string_view content,
                               std::string_view finish_reason, const Usage& usage) {
  JsonWriter w;

  beginEnvelope(w, who, "chat.completion");
  w.key("choices").beginArray().beginObject().field("index", 0);
  w.key("message").beginObject().field("role", "assistant").field("content", content).endObject();
  w.field("finish_reason", finish_reason);
  w.endObject().endArray();
  writeUsage(w, usage);
  w.endObject().endObject();
  return w.take();
}

std::string textCompletionBody(const ResponseIdentity& who, std::string_view text,
                               std::string_view finish_reason, const Usage& usage) {
  JsonWriter w;

  beginEnvelope(w, who, "text_completion");
  w.key("choices").beginArray().beginObject().field("index", 0).field("text", text);
  w.key("logprobs").null().field("finish_reason", finish_reason);
  w.endObject().endArray();
  writeUsage(w, usage);
  w.endObject().endObject();
  return w.take();
}

std::string roleChunk(const ResponseIdentity& who) {
  return chatChunk(who, "role", "assistant", nullptr);
}

std::string contentChunk(const ResponseIdentity& who, std::string_view text) {
  return chatChunk(who, "content", text, nullptr);
}

std::string finishChunk(const ResponseIdentity& who, std::string_view finish_reason) {
  std::string reason(finish_reason);
  return chatChunk(who, "", "", reason.c_str());
}

std::string usageChunk(const ResponseIdentity& who, const Usage& usage,
                       std::string_view emission_trigger) {
  JsonWriter w;

  beginEnvelope(w, who, "chat.completion.chunk");
  w.key("choices").beginArray().endArray();
  writeUsage(w, usage);
  w.key("time_to_first_token").null().key("throughput_after_first_token").null();
  w.field("emission_trigger", emission_trigger);
  w.endObject().endObject();
  return w.take();
}

std::string textChunk(const ResponseIdentity& who, std::string_view text,
                      std::optional<std::string_view> finish_reason) {
  JsonWriter w;

  beginEnvelope(w, who, "text_completion.chunk");
  w.key("choices").beginArray().beginObject().field("index", 0).field("text", text);
  if (finish_reason) {
    w.field("finish_reason", *finish_reason);
  }
  w.endObject().endArray().endObject();
  return w.take();
}

std::string sseData(std::string_view payload) {
  std::string frame;

  frame.reserve(payload.size() + 8);
  frame += "data: ";
  frame += payload;
  frame += "\n\n";
  return frame;
}

}  // namespace codex
