// The narrow interface between a completion request and the child's wire protocol.
//
// A protocol knows the child's command line, what to write to its stdin, and how to turn one
// stdout line into a ChildEvent. Everything above it (SSE, usage, timers) is protocol-neutral.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "models.hpp"
#include "openai.hpp"
#include "prompt.hpp"

namespace codex {

struct ChildEvent {
  enum class Kind {
    Ignored,
    MessageDelta,
    Message,
    TokenCount,
    ProviderUsage,
    TaskComplete,
    Error
  };

  Kind kind = Kind::Ignored;
  std::string text;  // delta, full message, finish reason or error message
  std::optional<int64_t> prompt_tokens;
  std::optional<int64_t> completion_tokens;
  std::optional<ApiError> error;  // an Error the protocol could classify (else a 502)
};

struct ChildRequest {
  std::string request_id;
  std::vector<ChatMessage> messages;
  std::string prompt;  // the messages flattened, for protocols that take one text
  ModelChoice model;
};

class ChildProtocol {
 public:
  virtual ~ChildProtocol() = default;

  virtual std::vector<std::string> arguments(const ChildRequest& request) const = 0;
  virtual std::string openingInput(const ChildRequest& request) = 0;

  // Parses one complete stdout line. Anything to send back on stdin is appended to `reply`.
  // Returns nothing for a line that is not valid JSON.
  virtual std::optional<ChildEvent> parseLine(std::string_view line, std::string& reply) = 0;

  // How a child that should stop is asked to: input that ends its work (empty: none), and
  // whether closing stdin ends the process (otherwise it gets SIGTERM).
  virtual std::string interruptInput() { return ""; }
  virtual bool endsOnStdinClose() const { return false; }
};

// `codex proto`: one user_input submission, then newline-delimited events.
std::unique_ptr<ChildProtocol> makeProtoProtocol(const Config& config);

// `codex app-server`: JSON-RPC over stdio, a thread per request, streamed deltas.
std::unique_ptr<ChildProtocol> makeAppServerProtocol(const Config& config);

// The protocol CODEX_BACKEND selects.
std::unique_ptr<ChildProtocol> makeChildProtocol(const Config& config);

}  // namespace codex
