// Event-to-response mapping; see completion_state.hpp.
#include "completion_state.hpp"

#include <algorithm>
#include <cctype>

#include "json_writer.hpp"
#include "prompt.hpp"

namespace codex {
namespace {

std::string errorFrame(const ApiError& error) {
  JsonWriter w;

  w.beginObject().key("error").beginObject();
  w.field("message", error.message).field("type", error.type).field("code", error.code);
  w.endObject().endObject();
  return sseData(w.str()) + std::string(kSseDone);
}

bool containsTimeout(std::string_view text) {
  std::string folded(text);
  for (auto& c : folded) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return folded.find("timeout") != std::string::npos;
}

}  // namespace

std::string CompletionState::openingFrames() const {
  return spec_.route == Route::Chat ? sseData(roleChunk(spec_.who)) : std::string();
}

bool CompletionState::apply(const ChildEvent& event, std::string& frames) {
  using Kind = ChildEvent::Kind;

  tool_action_ = ToolAction::None;
  switch (event.kind) {
    case Kind::MessageDelta:
      text_ += event.text;
      shapeTools();
      forward(frames);
      return false;
    case Kind::Message:
      // A full message repeats the deltas: only the part that extends them is new.
      if (event.text.starts_with(text_)) {
        text_ = event.text;
      } else if (text_.empty()) {
        text_ = event.text;
      }
      shapeTools();
      forward(frames);
      return false;
    case Kind::TokenCount:
      countEvent(event, false);
      return false;
    case Kind::ProviderUsage:
      countEvent(event, true);
      return false;
    case Kind::TaskComplete:
      countEvent(event, false);
      task_complete_ = true;
      finish_reason_ = event.text.empty() ? "stop" : event.text;
      frames += spec_.stream ? finalFrames() : "";
      return true;
    case Kind::Error:
      error_ = event.error ? *event.error : errors::backend(event.text);
      frames += spec_.stream ? errorFrame(*error_) : "";
      return true;
    case Kind::Ignored:
      return false;
  }
  return false;
}

void CompletionState::countEvent(const ChildEvent& event, bool replace) {
  bool has_numbers = event.prompt_tokens || event.completion_tokens;
  auto merge = [replace](std::optional<int64_t>& field, std::optional<int64_t> value) {
    if (value) {
      field = replace ? *value : std::max(field.value_or(0), *value);
    }
  };

  if (trigger_.empty() && has_numbers) {
    using Kind = ChildEvent::Kind;
    trigger_ = event.kind == Kind::TokenCount      ? "token_count"
               : event.kind == Kind::ProviderUsage ? "provider"
                                                   : "task_complete";
  }
  merge(prompt_tokens_, event.prompt_tokens);
  merge(completion_tokens_, event.completion_tokens);
  provider_supplied_ = provider_supplied_ || event.kind == ChildEvent::Kind::ProviderUsage;
}

void CompletionState::forward(std::string& frames) {
  // Once a complete tool block exists, shaping holds back what follows the last one.
  bool hold_tail = shaped() && tools_.blocks() > 0;
  size_t allowed = hold_tail ? tools_.lastBlockEnd() : text_.size();

  if (!spec_.stream || forwarded_ >= allowed) {
    return;
  }
  std::string_view piece = std::string_view(text_).substr(forwarded_, allowed - forwarded_);

  frames += sseData(spec_.route == Route::Chat ? contentChunk(spec_.who, piece)
                                               : textChunk(spec_.who, piece, std::nullopt));
  forwarded_ = allowed;
}

bool CompletionState::shaped() const {
  return spec_.stream && spec_.route == Route::Chat && spec_.tools.active();
}

void CompletionState::shapeTools() {
  if (!shaped()) {
    return;
  }
  const ToolShaping& tools = spec_.tools;

  tools_.scan(text_);
  if (tools_.blocks() == 0) {
    return;
  }
  if (tools.block_max > 0 && static_cast<int64_t>(tools_.blocks()) >= tools.block_max) {
    tool_action_ = ToolAction::Cut;
  } else if (tools.stop) {
    // Every content event after the first block restarts the grace period.
    tool_action_ = tools.first_mode ? ToolAction::Cut : ToolAction::StartGrace;
  }
}

std::string CompletionState::cutFrames() {
  cut_ = true;
  finish_reason_ = "stop";
  return finalFrames();
}

std::string CompletionState::finalFrames() {
  std::string frames;

  // The client should see why the answer is empty; a chat stream that completed normally with
  // no text is simply empty.
  bool completed_chat = task_complete_ && spec_.route == Route::Chat;
  if (!completed_chat && text_.empty()) {
    text_ = kNoOutput;
    forward(frames);
  }
  if (spec_.route == Route::Chat) {
    frames += sseData(finishChunk(spec_.who, finishReason()));
    if (spec_.include_usage) {
      frames += sseData(usageChunk(spec_.who, usage(), emissionTrigger()));
    }
  } else {
    frames += sseData(textChunk(spec_.who, "", finishReason()));
  }
  frames += kSseDone;
  return frames;
}

std::string CompletionState::closingFrames(EndCause cause, std::string_view detail) {
  switch (cause) {
    case EndCause::RequestTimeout:
      error_ = errors::requestTimeout();
      break;
    case EndCause::SpawnFailed:
      // A start-up failure that is really a timeout is reported as one.
      error_ = containsTimeout(detail) ? errors::requestTimeout() : errors::spawnFailed(detail);
      break;
    case EndCause::ChildFailed:
      error_ = errors::backend(detail);
      break;
    case EndCause::StreamIdle:
      if (spec_.route == Route::Legacy) {
        error_ = errors::idleTimeout();
      }
      break;
    case EndCause::Shutdown:
      error_ = errors::shuttingDown();
      break;
    case EndCause::ChildExited:
      break;
  }
  // The error is kept so the usage log can report the status the client effectively got.
  return error_ ? errorFrame(*error_) : finalFrames();
}

std::string_view CompletionState::content() const {
  // A stream has already sent its fallback text, if any, as part of text_.
  return text_.empty() && !spec_.stream ? kNoOutput : std::string_view(text_);
}

std::string CompletionState::body() const {
  if (spec_.route == Route::Chat) {
    return chatCompletionBody(spec_.who, content(), finishReason(), usage());
  }
  return textCompletionBody(spec_.who, content(), finishReason(), usage());
}

Usage CompletionState::usage() const {
  // A field no event reported falls back to its estimate rather than to zero.
  return {prompt_tokens_.value_or(spec_.prompt_estimate),
          completion_tokens_.value_or(estimateTokens(content()))};
}

std::string_view CompletionState::finishReason() const {
  return task_complete_ || cut_ ? std::string_view(finish_reason_) : "length";
}

std::string_view CompletionState::emissionTrigger() const {
  if (!trigger_.empty()) {
    return trigger_;
  }
  return task_complete_ ? "task_complete" : "close";
}

}  // namespace codex
