// Model ids, reasoning effort and the flattened prompt, as spec sections 4 and 7 describe them.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "models.hpp"
#include "prompt.hpp"

namespace codex {
namespace {

using Ids = std::vector<std::string>;

Config configFor(std::string env, std::string codex_model = "gpt-5") {
  Config config;

  config.env = std::move(env);
  config.codex_model = std::move(codex_model);
  return config;
}

ModelChoice resolve(std::optional<std::string_view> model,
                    std::optional<std::string_view> effort = std::nullopt) {
  return resolveModel(model, effort, configFor(""));
}

TEST_CASE("production advertises the five codex-5 ids in order") {
  CHECK(advertisedModels(configFor("")) ==
        Ids{"codex-5", "codex-5-low", "codex-5-medium", "codex-5-high", "codex-5-minimal"});
  CHECK(advertisedModels(configFor("prod")) == advertisedModels(configFor("")));
}

TEST_CASE("PROXY_ENV dev, in any case, advertises the five codev-5 ids in order") {
  Ids dev = {"codev-5", "codev-5-low", "codev-5-medium", "codev-5-high", "codev-5-minimal"};

  CHECK(advertisedModels(configFor("dev")) == dev);
  CHECK(advertisedModels(configFor("Dev")) == dev);
}

TEST_CASE("an upper-case id is accepted as its lower-case form with the implied effort") {
  ModelChoice choice = resolve("CODEX-5-HIGH");

  CHECK(choice.accepted);
  CHECK(choice.requested == "codex-5-high");
  CHECK(choice.effort == "high");
  CHECK(choice.effective == "gpt-5");
}

TEST_CASE("surrounding blanks are trimmed from the model id") {
  ModelChoice choice = resolve(" codex-5 ");

  CHECK(choice.accepted);
  CHECK(choice.requested == "codex-5");
  CHECK(choice.effort.empty());
}

TEST_CASE("CODEX_MODEL is an accepted id in any case") {
  CHECK(resolve("gpt-5").accepted);
  CHECK(resolve("gpt-5").requested == "gpt-5");
  CHECK(resolve("GPT-5").requested == "gpt-5");
}

TEST_CASE("ids of both prefixes are accepted in every environment") {
  for (const char* id : {"codev-5", "codev-5-minimal", "codex-5-low"}) {
    CAPTURE(id);
    CHECK(resolveModel(id, std::nullopt, configFor("")).accepted);
    CHECK(resolveModel(id, std::nullopt, configFor("dev")).accepted);
  }
}

TEST_CASE("an unknown model is not accepted and keeps the requested text") {
  ModelChoice choice = resolve("  GPT-4o ");

  CHECK_FALSE(choice.accepted);
  CHECK(choice.requested == "GPT-4o");
}

TEST_CASE("a near-miss of an accepted id is not accepted") {
  CHECK_FALSE(resolve("codex-5-ultra").accepted);
  CHECK_FALSE(resolve("codex-5-").accepted);
  CHECK_FALSE(resolve("codex5").accepted);
}

TEST_CASE("an absent or empty model falls back to CODEX_MODEL") {
  for (auto model : {std::optional<std::string_view>{}, std::optional<std::string_view>{""}}) {
    ModelChoice choice = resolve(model);

    CHECK(choice.accepted);
    CHECK(choice.requested == "gpt-5");
    CHECK(choice.effective == "gpt-5");
    CHECK(choice.effort.empty());
  }
}

TEST_CASE("a CODEX_MODEL with capitals is accepted only as written") {
  Config config = configFor("", "GPT-5-Custom");

  ModelChoice exact = resolveModel("GPT-5-Custom", std::nullopt, config);
  ModelChoice folded = resolveModel("gpt-5-custom", std::nullopt, config);

  CHECK(exact.accepted);
  CHECK(exact.requested == "GPT-5-Custom");
  CHECK_FALSE(folded.accepted);
}

TEST_CASE("the child always runs CODEX_MODEL whatever id was requested") {
  for (const char* id : {"codex-5-high", "codev-5", "gpt-5", "unknown-model"}) {
    CAPTURE(id);
    CHECK(resolve(id).effective == "gpt-5");
  }
}

TEST_CASE("only codex-5-<effort> and codev-5-<effort> imply an effort") {
  CHECK(resolve("codex-5-low").effort == "low");
  CHECK(resolve("codev-5-minimal").effort == "minimal");
  CHECK(resolve("codex-5-medium").effort == "medium");
  CHECK(resolve("codex-5").effort.empty());
  CHECK(resolve("codev-5").effort.empty());
  CHECK(resolve("gpt-5").effort.empty());
}

TEST_CASE("a valid explicit effort wins over the implied one and is lower-cased") {
  CHECK(resolve("codex-5-high", "low").effort == "low");
  CHECK(resolve("codex-5", "HIGH").effort == "high");
  CHECK(resolve("gpt-5", " minimal ").effort == "minimal");
}

TEST_CASE("an invalid explicit effort falls back to the implied effort (quirk Q7 expected)") {
  CHECK(resolve("codex-5-high", "bogus").effort == "high");
  CHECK(resolve("codex-5", "bogus").effort.empty());
}

TEST_CASE("joinPrompt writes one [role] line per message") {
  std::vector<ChatMessage> messages = {{"system", "sys"}, {"user", "hi"}};

  CHECK(joinPrompt(messages) == "[system] sys\n[user] hi");
}

TEST_CASE("joinPrompt writes a missing role as user") {
  CHECK(joinPrompt({{"", "hello"}}) == "[user] hello");
  CHECK(joinPrompt({{"assistant", ""}, {"", "x"}}) == "[assistant] \n[user] x");
}

TEST_CASE("joinPrompt of no messages is empty") {
  CHECK(joinPrompt({}).empty());
}

TEST_CASE("utf16Length counts UTF-16 code units") {
  CHECK(utf16Length("") == 0);
  CHECK(utf16Length("hello") == 5);
  CHECK(utf16Length("\xE2\x80\xA6") == 1);      // U+2026, one unit
  CHECK(utf16Length("\xC3\xA9") == 1);          // U+00E9, one unit
  CHECK(utf16Length("\xF0\x9F\x98\x80") == 2);  // U+1F600, a surrogate pair
  CHECK(utf16Length("a\xE2\x80\xA6\xF0\x9F\x98\x80") == 4);
}

TEST_CASE("the prompt estimate is ceil(chars / 4) over the contents") {
  auto estimate = [](size_t chars) {
    return estimatePromptTokens({{"user", std::string(chars, 'x')}});
  };

  CHECK(estimate(0) == 0);
  CHECK(estimate(40) == 10);
  CHECK(estimate(41) == 11);
  CHECK(estimate(44) == 11);
}

TEST_CASE("the prompt estimate sums contents and ignores roles and separators") {
  std::vector<ChatMessage> messages = {{"system", std::string(20, 'x')},
                                       {"user", std::string(21, 'y')}};

  CHECK(estimatePromptTokens(messages) == 11);
}

TEST_CASE("the prompt estimate counts UTF-16 units, not bytes") {
  // Four ellipses are 12 bytes but 4 units: one token.
  CHECK(estimatePromptTokens({{"user", "\xE2\x80\xA6\xE2\x80\xA6\xE2\x80\xA6\xE2\x80\xA6"}}) == 1);
  CHECK(estimateTokens("Hello from fake-codex.") == 6);
  CHECK(estimateTokens("") == 0);
}

}  // namespace
}  // namespace codex
