// OpenAI response shapes: the error envelope, chat and text-completion objects and stream
// chunks. Every byte a client parses is produced here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace codex {

struct ApiError {
  int status = 500;
  std::string type;
  std::string code;
  std::string message;
  std::optional<std::string> param;
};

namespace errors {
ApiError unauthorized();
ApiError messagesRequired();
ApiError promptRequired();
ApiError nUnsupported();
ApiError modelNotFound(std::string_view requested);
ApiError contextLengthExceeded();
ApiError invalidJson(std::string_view detail);
ApiError invalidField(std::string_view param, std::string_view message);
ApiError bodyTooLarge();
ApiError notFound(std::string_view method, std::string_view path);
ApiError streamsExhausted();
ApiError rateLimited();
ApiError shuttingDown();
ApiError requestTimeout();
ApiError idleTimeout();
ApiError backend(std::string_view message);
ApiError spawnFailed(std::string_view message);
}  // namespace errors

// {"error":{"message":…,"type":…,"param":…,"code":…}} ("param" only when set).
std::string errorBody(const ApiError& error);

// "429 Too Many Requests" for the FastCGI Status header.
std::string statusLine(int status);

// "chatcmpl-" + 24 URL-safe random characters.
std::string newResponseId(std::string_view prefix);

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// Fixed parts of every object of one response.
struct ResponseIdentity {
  std::string id;
  int64_t created = 0;
  std::string model;
};

std::string chatCompletionBody(const ResponseIdentity& who, std::string_view content,
                               std::string_view finish_reason, const Usage& usage);
std::string textCompletionBody(const ResponseIdentity& who, std::string_view text,
                               std::string_view finish_reason, const Usage& usage);

std::string roleChunk(const ResponseIdentity& who);
std::string contentChunk(const ResponseIdentity& who, std::string_view text);
std::string finishChunk(const ResponseIdentity& who, std::string_view finish_reason);
std::string usageChunk(const ResponseIdentity& who, const Usage& usage,
                       std::string_view emission_trigger);
std::string textChunk(const ResponseIdentity& who, std::string_view text,
                      std::optional<std::string_view> finish_reason);

// SSE framing: "data: <payload>\n\n".
std::string sseData(std::string_view payload);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

}  // namespace codex
