// The `codex proto` protocol: the child's argv (spec 8.2), the submission (8.4) and how each
// stdout line becomes an event (9), in both the CLI's and the test shims' shapes.
#include <doctest/doctest.h>
#include <simdjson.h>

#include <string>
#include <vector>

#include "child_protocol.hpp"

namespace codex {
namespace {

using Args = std::vector<std::string>;
using Kind = ChildEvent::Kind;

const Args kFixedArgs = {"proto",
                         "--config",
                         "preferred_auth_method=\"chatgpt\"",
                         "--config",
                         "project_doc_max_bytes=0",
                         "--config",
                         "history.persistence=\"none\"",
                         "--config",
                         "tools.web_search=false",
                         "--config",
                         "sandbox_mode=\"read-only\"",
                         "--config",
                         "model=\"gpt-5\""};

Config protoConfig() {
  Config config;

  config.sandbox_mode = "read-only";
  config.codex_model = "gpt-5";
  return config;
}

ChildRequest requestWithEffort(std::string effort) {
  ChildRequest request;

  request.request_id = "req-1";
  request.messages = {{"user", "hi"}};
  request.prompt = "[user] hi";
  request.model = {"codex-5", "gpt-5", std::move(effort), true};
  return request;
}

// Parses one line with a fresh protocol, as a request's child would.
std::optional<ChildEvent> parse(std::string_view line) {
  Config config = protoConfig();
  auto protocol = makeProtoProtocol(config);
  std::string reply;

  auto event = protocol->parseLine(line, reply);
  CHECK(reply.empty());
  return event;
}

ChildEvent event(std::string_view line) {
  auto parsed = parse(line);

  REQUIRE(parsed.has_value());
  return *parsed;
}

TEST_CASE("arguments without provider or effort are exactly the fixed list of spec 8.2") {
  Config config = protoConfig();

  CHECK(makeProtoProtocol(config)->arguments(requestWithEffort("")) == kFixedArgs);
}

TEST_CASE("arguments carry the configured sandbox mode and the effective model") {
  Config config = protoConfig();
  config.sandbox_mode = "danger-full-access";
  ChildRequest request = requestWithEffort("");
  request.model.effective = "gpt-5-codex";

  Args args = makeProtoProtocol(config)->arguments(request);

  REQUIRE(args.size() == kFixedArgs.size());
  CHECK(args[10] == "sandbox_mode=\"danger-full-access\"");
  CHECK(args[12] == "model=\"gpt-5-codex\"");
}

TEST_CASE("model_provider is passed only when CODEX_FORCE_PROVIDER is set") {
  Config config = protoConfig();
  config.force_provider = "openai";
  Args expected = kFixedArgs;
  expected.insert(expected.end(), {"--config", "model_provider=\"openai\""});

  CHECK(makeProtoProtocol(config)->arguments(requestWithEffort("")) == expected);
}

TEST_CASE("the effort pair is passed only with an effort, after the provider") {
  Config config = protoConfig();
  Args expected = kFixedArgs;
  expected.insert(expected.end(), {"--config", "model_reasoning_effort=\"high\"", "--config",
                                   "reasoning.effort=\"high\""});

  CHECK(makeProtoProtocol(config)->arguments(requestWithEffort("high")) == expected);

  config.force_provider = "oss";
  Args args = makeProtoProtocol(config)->arguments(requestWithEffort("low"));

  REQUIRE(args.size() == kFixedArgs.size() + 6);
  CHECK(args[14] == "model_provider=\"oss\"");
  CHECK(args[16] == "model_reasoning_effort=\"low\"");
  CHECK(args[18] == "reasoning.effort=\"low\"");
}

TEST_CASE("the opening input is one JSON line submitting the prompt as user_input") {
  Config config = protoConfig();
  ChildRequest request = requestWithEffort("");
  request.prompt = "[system] say \"hi\"\n[user] hi \xE2\x80\xA6";

  std::string input = makeProtoProtocol(config)->openingInput(request);

  REQUIRE_FALSE(input.empty());
  CHECK(input.back() == '\n');
  CHECK(input.find('\n') == input.size() - 1);

  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.parse(input).value();
  CHECK(std::string(root["id"].get_string().value()) == "req-1");
  CHECK(std::string(root["op"]["type"].get_string().value()) == "user_input");
  CHECK(root["op"]["items"].get_array().value().size() == 1);
  CHECK(std::string(root.at_pointer("/op/items/0/type").get_string().value()) == "text");
  CHECK(std::string(root.at_pointer("/op/items/0/text").get_string().value()) == request.prompt);
}

TEST_CASE("agent_message_delta is read in the shim shape and the CLI shape") {
  ChildEvent shim = event(R"({"type":"agent_message_delta","msg":{"delta":"Hello f"}})");
  ChildEvent cli = event(R"({"id":"1","msg":{"type":"agent_message_delta","delta":"Hello f"}})");
  ChildEvent top = event(R"({"type":"agent_message_delta","delta":"Hello f"})");

  for (const ChildEvent& e : {shim, cli, top}) {
    CHECK(e.kind == Kind::MessageDelta);
    CHECK(e.text == "Hello f");
  }
}

TEST_CASE("agent_message is read in the shim shape and the CLI shape") {
  ChildEvent shim = event(R"({"type":"agent_message","msg":{"message":"Hello from fake-codex."}})");
  ChildEvent cli =
      event(R"({"id":"1","msg":{"type":"agent_message","message":"Hello from fake-codex."}})");

  for (const ChildEvent& e : {shim, cli}) {
    CHECK(e.kind == Kind::Message);
    CHECK(e.text == "Hello from fake-codex.");
  }
}

TEST_CASE("msg.type wins over the top-level type") {
  CHECK(event(R"({"type":"task_started","msg":{"type":"agent_message","message":"x"}})").kind ==
        Kind::Message);
}

TEST_CASE("token_count numbers are read in snake_case and camelCase") {
  ChildEvent snake =
      event(R"({"type":"token_count","msg":{"prompt_tokens":8,"completion_tokens":6}})");
  ChildEvent camel =
      event(R"({"id":"1","msg":{"type":"token_count","promptTokens":8,"completionTokens":6}})");

  for (const ChildEvent& e : {snake, camel}) {
    CHECK(e.kind == Kind::TokenCount);
    CHECK(e.prompt_tokens == 8);
    CHECK(e.completion_tokens == 6);
  }
}

TEST_CASE("a token_count field that is missing, negative or not a number is absent") {
  ChildEvent e =
      event(R"({"type":"token_count","msg":{"prompt_tokens":-3,"completion_tokens":"6"}})");

  CHECK(e.kind == Kind::TokenCount);
  CHECK_FALSE(e.prompt_tokens.has_value());
  CHECK_FALSE(e.completion_tokens.has_value());
  CHECK_FALSE(event(R"({"type":"token_count","msg":{}})").prompt_tokens.has_value());
}

TEST_CASE("a fractional count is truncated") {
  CHECK(event(R"({"type":"token_count","msg":{"prompt_tokens":7.9}})").prompt_tokens == 7);
}

TEST_CASE("provider usage is read from msg, msg.usage and a top-level usage object") {
  ChildEvent flat = event(R"({"type":"usage","msg":{"prompt_tokens":9,"completion_tokens":5}})");
  ChildEvent nested =
      event(R"({"type":"usage","msg":{"usage":{"prompt_tokens":9,"completion_tokens":5}}})");
  ChildEvent top = event(R"({"type":"usage","usage":{"prompt_tokens":9,"completion_tokens":5}})");
  ChildEvent cli = event(
      R"({"id":"1","msg":{"type":"usage"},"usage":{"prompt_tokens":9,"completion_tokens":5}})");

  for (const ChildEvent& e : {flat, nested, top, cli}) {
    CHECK(e.kind == Kind::ProviderUsage);
    CHECK(e.prompt_tokens == 9);
    CHECK(e.completion_tokens == 5);
  }
}

TEST_CASE("task_complete without a reason or numbers carries neither") {
  ChildEvent e = event(R"({"type":"task_complete"})");

  CHECK(e.kind == Kind::TaskComplete);
  CHECK(e.text.empty());
  CHECK_FALSE(e.prompt_tokens.has_value());
  CHECK_FALSE(e.completion_tokens.has_value());
}

TEST_CASE("task_complete carries finish_reason or finishReason verbatim") {
  CHECK(event(R"({"type":"task_complete","msg":{"finish_reason":"content_filter"}})").text ==
        "content_filter");
  CHECK(event(R"({"id":"1","msg":{"type":"task_complete","finishReason":"length"}})").text ==
        "length");
}

TEST_CASE("task_complete numbers are read from msg and from msg.token_count") {
  ChildEvent flat =
      event(R"({"type":"task_complete","msg":{"prompt_tokens":3,"completion_tokens":4}})");
  ChildEvent nested = event(R"({"type":"task_complete",)"
                            R"("msg":{"token_count":{"prompt_tokens":3,"completion_tokens":4}}})");

  for (const ChildEvent& e : {flat, nested}) {
    CHECK(e.kind == Kind::TaskComplete);
    CHECK(e.prompt_tokens == 3);
    CHECK(e.completion_tokens == 4);
  }
}

TEST_CASE("an error event carries its message, or a generic one") {
  ChildEvent shim = event(R"({"type":"error","msg":{"message":"fake backend failure"}})");
  ChildEvent cli = event(R"({"id":"1","msg":{"type":"error","message":"fake backend failure"}})");
  ChildEvent bare = event(R"({"type":"error"})");

  CHECK(shim.kind == Kind::Error);
  CHECK(shim.text == "fake backend failure");
  CHECK(cli.text == "fake backend failure");
  CHECK(bare.kind == Kind::Error);
  CHECK(bare.text == "backend reported an error");
}

TEST_CASE("events of other types are ignored") {
  for (const char* line :
       {R"({"type":"session_configured"})", R"({"type":"task_started"})",
        R"({"type":"agent_reasoning_delta","msg":{"delta":"\u2026"}})",
        R"({"id":"1","msg":{"type":"exec_command_begin"}})", R"({"id":"1"})", R"([1,2])", "42"}) {
    CAPTURE(line);
    CHECK(event(line).kind == Kind::Ignored);
  }
}

TEST_CASE("a line that is not valid JSON gives no event") {
  for (const char* line : {"not json", R"({"type":)", "Reading prompt from stdin...", "{}}"}) {
    CAPTURE(line);
    CHECK_FALSE(parse(line).has_value());
  }
}

TEST_CASE("one protocol parses a sequence of lines independently") {
  Config config = protoConfig();
  auto protocol = makeProtoProtocol(config);
  std::string reply;

  auto first = protocol->parseLine(R"({"type":"agent_message_delta","msg":{"delta":"a"}})", reply);
  auto broken = protocol->parseLine("{", reply);
  auto second = protocol->parseLine(R"({"type":"agent_message_delta","msg":{"delta":"b"}})", reply);

  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  CHECK(first->text == "a");
  CHECK_FALSE(broken.has_value());
  CHECK(second->text == "b");
}

}  // namespace
}  // namespace codex
