// Model ids: what /v1/models advertises, which ids a request may name, and the reasoning effort.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"

namespace codex {

struct ModelChoice {
  std::string requested;  // echoed in every response object
  std::string effective;  // what the child runs
  std::string effort;     // empty when none applies
  bool accepted = false;
};

std::vector<std::string> advertisedModels(const Config& config);

// `model` is the request's model field already turned into text (absent -> nullopt);
// `explicit_effort` the first non-empty of reasoning.effort / reasoning_effort / reasoningEffort.
ModelChoice resolveModel(std::optional<std::string_view> model,
                         std::optional<std::string_view> explicit_effort, const Config& config);

}  // namespace codex
