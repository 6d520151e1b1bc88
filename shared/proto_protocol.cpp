// The `codex proto` wire protocol: argv of --config overrides, one user_input submission on
// stdin, and events shaped either {"id":…,"msg":{"type":…}} (the CLI) or {"type":…,"msg":{…}}.
#include <simdjson.h>

#include "child_protocol.hpp"
#include "json_count.hpp"
#include "json_parsers.hpp"
#include "json_writer.hpp"

namespace codex {
namespace {

using simdjson::dom::element;

std::optional<element> child(element parent, std::string_view name) {
  element value;

  if (!parent.is_object() || parent[name].get(value) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  return value;
}

std::optional<std::string_view> stringAt(std::optional<element> parent, std::string_view name) {
  std::string_view text;

  if (!parent) {
    return std::nullopt;
  }
  auto value = child(*parent, name);
  if (!value || value->get(text) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  return text;
}

std::optional<int64_t> countAt(std::optional<element> parent, std::string_view name) {
  auto value = parent ? child(*parent, name) : std::nullopt;
  return value ? countValue(*value) : std::nullopt;
}

template <typename... Names>
std::optional<int64_t> firstCount(std::optional<element> parent, Names... names) {
  std::optional<int64_t> found;
  ((found = found ? found : countAt(parent, names)), ...);
  return found;
}

std::optional<int64_t> countIn(std::initializer_list<std::optional<element>> parents,
                               std::string_view name) {
  for (const auto& parent : parents) {
    if (auto count = countAt(parent, name)) {
      return count;
    }
  }
  return std::nullopt;
}

std::string_view textOr(std::optional<std::string_view> first,
                        std::optional<std::string_view> second) {
  return first ? *first : second.value_or("");
}

class ProtoProtocol : public ChildProtocol {
 public:
  explicit ProtoProtocol(const Config& config) : config_(config) {}

  std::vector<std::string> arguments(const ChildRequest& request) const override;
  std::string openingInput(const ChildRequest& request) override;
  std::optional<ChildEvent> parseLine(std::string_view line, std::string& reply) override;

 private:
  ChildEvent decode(element root) const;

  const Config& config_;
};

std::vector<std::string> ProtoProtocol::arguments(const ChildRequest& request) const {
  std::vector<std::string> args = {"proto"};
  auto set = [&args](std::string_view key, std::string_view value) {
    args.push_back("--config");
    args.push_back(std::string(key) + "=\"" + std::string(value) + "\"");
  };
  auto setRaw = [&args](std::string_view assignment) {
    args.push_back("--config");
    args.push_back(std::string(assignment));
  };

  set("preferred_auth_method", "chatgpt");
  setRaw("project_doc_max_bytes=0");
  set("history.persistence", "none");
  setRaw("tools.web_search=false");
  set("sandbox_mode", config_.sandbox_mode);
  set("model", request.model.effective);
  if (!config_.force_provider.empty()) {
    set("model_provider", config_.force_provider);
  }
  if (!request.model.effort.empty()) {
    set("model_reasoning_effort", request.model.effort);
    set("reasoning.effort", request.model.effort);
  }
  return args;
}

std::string ProtoProtocol::openingInput(const ChildRequest& request) {
  JsonWriter w;

  w.beginObject().field("id", request.request_id);
  w.key("op").beginObject().field("type", "user_input");
  w.key("items").beginArray().beginObject().field("type", "text").field("text", request.prompt);
  w.endObject().endArray().endObject().endObject();
  return w.take() + "\n";
}

std::optional<ChildEvent> ProtoProtocol::parseLine(std::string_view line, std::string&) {
  ParserLease lease;  // root and everything read from it live in the leased parser
  element root;

  if (lease.parser().parse(line.data(), line.size()).get(root) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  return decode(root);
}

ChildEvent ProtoProtocol::decode(element root) const {
  auto msg = child(root, "msg");
  std::string_view type = textOr(stringAt(msg, "type"), stringAt(root, "type"));
  ChildEvent event;

  if (type == "agent_message_delta") {
    event.kind = ChildEvent::Kind::MessageDelta;
    event.text = textOr(stringAt(msg, "delta"), stringAt(root, "delta"));
  } else if (type == "agent_message") {
    event.kind = ChildEvent::Kind::Message;
    event.text = textOr(stringAt(msg, "message"), stringAt(root, "message"));
  } else if (type == "token_count") {
    event.kind = ChildEvent::Kind::TokenCount;
    event.prompt_tokens = firstCount(msg, "prompt_tokens", "promptTokens");
    event.completion_tokens = firstCount(msg, "completion_tokens", "completionTokens");
  } else if (type == "usage") {
    auto nested = msg ? child(*msg, "usage") : std::nullopt;
    auto top = child(root, "usage");
    event.kind = ChildEvent::Kind::ProviderUsage;
    event.prompt_tokens = countIn({msg, nested, top}, "prompt_tokens");
    event.completion_tokens = countIn({msg, nested, top}, "completion_tokens");
  } else if (type == "task_complete") {
    auto counts = msg ? child(*msg, "token_count") : std::nullopt;
    event.kind = ChildEvent::Kind::TaskComplete;
    event.text = textOr(stringAt(msg, "finish_reason"), stringAt(msg, "finishReason"));
    event.prompt_tokens = countIn({msg, counts}, "prompt_tokens");
    event.completion_tokens = countIn({msg, counts}, "completion_tokens");
  } else if (type == "error") {
    event.kind = ChildEvent::Kind::Error;
    event.text = textOr(stringAt(msg, "message"), stringAt(root, "message"));
    if (event.text.empty()) {
      event.text = "backend reported an error";
    }
  }
  return event;
}

}  // namespace

std::unique_ptr<ChildProtocol> makeProtoProtocol(const Config& config) {
  return std::make_unique<ProtoProtocol>(config);
}

}  // namespace codex
