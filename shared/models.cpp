// Model normalisation as clients of the OpenAI API expect it: case and surrounding blanks do not
// matter, the response echoes what was asked, and the child always runs CODEX_MODEL.
#include "models.hpp"
#include "text.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace codex {
namespace {

constexpr std::array<std::string_view, 5> kSuffixes = {"", "-low", "-medium", "-high", "-minimal"};
constexpr std::array<std::string_view, 4> kEfforts = {"low", "medium", "high", "minimal"};

std::vector<std::string> idsWithPrefix(std::string_view prefix) {
  std::vector<std::string> ids;
  for (auto suffix : kSuffixes) {
    ids.push_back(std::string(prefix) + std::string(suffix));
  }
  return ids;
}

bool isEffort(std::string_view word) {
  return std::find(kEfforts.begin(), kEfforts.end(), word) != kEfforts.end();
}

// codex-5-high implies "high"; plain codex-5 and gpt-5 imply nothing.
std::string impliedEffort(std::string_view requested) {
  for (std::string_view prefix : {"codex-5-", "codev-5-"}) {
    if (requested.starts_with(prefix) && isEffort(requested.substr(prefix.size()))) {
      return std::string(requested.substr(prefix.size()));
    }
  }
  return "";
}

bool isAccepted(std::string_view id, const Config& config) {
  if (id == config.codex_model) {
    return true;
  }
  for (std::string_view prefix : {"codex-5", "codev-5"}) {
    for (auto suffix : kSuffixes) {
      if (id == std::string(prefix) + std::string(suffix)) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace

std::vector<std::string> advertisedModels(const Config& config) {
  return idsWithPrefix(config.devEnvironment() ? "codev-5" : "codex-5");
}

ModelChoice resolveModel(std::optional<std::string_view> model,
                         std::optional<std::string_view> explicit_effort, const Config& config) {
  ModelChoice choice;
  choice.effective = config.codex_model;

  if (!model || trim(*model).empty()) {
    choice.requested = config.codex_model;
    choice.accepted = true;
  } else {
    std::string_view trimmed = trim(*model);
    std::string folded = lower(trimmed);
    bool folded_ok = isAccepted(folded, config);

    choice.requested = folded_ok ? folded : std::string(trimmed);
    choice.accepted = folded_ok || isAccepted(trimmed, config);
  }

  // An invalid explicit effort falls back to the one the model id implies.
  std::string asked = explicit_effort ? lower(trim(*explicit_effort)) : "";
  choice.effort = isEffort(asked) ? asked : impliedEffort(choice.requested);
  return choice;
}

}  // namespace codex
