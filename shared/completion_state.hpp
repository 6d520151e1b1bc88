// What a completion answers, given the child's events: the pure core of the gateway, shared by
// JSON and SSE responses so both report the same text, finish reason and usage.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "child_protocol.hpp"
#include "openai.hpp"
#include "tool_blocks.hpp"

namespace codex {

enum class Route { Chat, Legacy };

// Tool-block shaping; only chat streams are ever shaped.
struct ToolShaping {
  bool suppress_tail = false;  // forward text only up to the last complete block
  bool stop = false;           // and end the stream after tools
  bool first_mode = false;     // end at the first block instead of after a quiet grace period
  int64_t block_max = 0;       // end once this many blocks are complete (0: no cap)

  bool active() const { return suppress_tail || stop || block_max > 0; }
};

struct CompletionSpec {
  Route route = Route::Chat;
  bool stream = false;
  bool include_usage = false;
  ResponseIdentity who;
  int64_t prompt_estimate = 0;
  ToolShaping tools;
};

// What tool shaping asks of the caller after an event.
enum class ToolAction { None, Cut, StartGrace };

// Why a response ended when no event ended it.
enum class EndCause { ChildExited, ChildFailed, StreamIdle, RequestTimeout, SpawnFailed, Shutdown };

inline constexpr std::string_view kNoOutput = "No output from backend.";

class CompletionState {
 public:
  explicit CompletionState(CompletionSpec spec) : spec_(std::move(spec)) {}

  // Stream only: what follows the headers at once (the role chunk of a chat stream).
  std::string openingFrames() const;

  // Applies one event. For streams the frames to send are appended to `frames`. Returns true
  // when the event ends the response (task_complete or a backend error).
  bool apply(const ChildEvent& event, std::string& frames);

  // Stream only: the closing frames for an end that no event announced. An error end is kept
  // in error().
  std::string closingFrames(EndCause cause, std::string_view detail);

  // What the last apply() asks for, and the frames that end a stream cut after tools.
  ToolAction toolAction() const { return tool_action_; }
  std::string cutFrames();

  // Non-stream only: the 200 body (call once the response ends without error()).
  std::string body() const;

  const std::optional<ApiError>& error() const { return error_; }
  bool taskComplete() const { return task_complete_; }
  Usage usage() const;
  std::string_view finishReason() const;
  std::string_view emissionTrigger() const;
  const std::string& text() const { return text_; }
  // The answer's text as the client sees it (the fallback when the child said nothing).
  std::string_view content() const;
  const CompletionSpec& spec() const { return spec_; }
  // For the usage log: whether any event supplied a count (else both counts are estimates), and
  // whether a provider `usage` event arrived.
  bool countsFromEvents() const { return prompt_tokens_ || completion_tokens_; }
  bool providerSupplied() const { return provider_supplied_; }

 private:
  void forward(std::string& frames);
  void shapeTools();
  bool shaped() const;
  void countEvent(const ChildEvent& event, bool replace);
  std::string finalFrames();

  CompletionSpec spec_;
  std::string text_;  // all assistant text received
  size_t forwarded_ = 0;
  std::optional<int64_t> prompt_tokens_;
  std::optional<int64_t> completion_tokens_;
  std::string trigger_;  // the first usage-bearing event's kind
  bool task_complete_ = false;
  bool cut_ = false;  // ended after tool blocks
  std::string finish_reason_;
  ToolBlockScanner tools_;
  ToolAction tool_action_ = ToolAction::None;
  std::optional<ApiError> error_;
  bool provider_supplied_ = false;
};

}  // namespace codex
