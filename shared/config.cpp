// Environment parsing: empty means unset, booleans take the standard words, and anything that
// does not parse stops start-up with the variable's name instead of becoming a silent default.
#include "config.hpp"

#include "codex_overrides.hpp"
#include "text.hpp"

#include <unistd.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <map>
#include <variant>

namespace codex {
namespace {

using Member = std::variant<std::string Config::*, int64_t Config::*, bool Config::*>;

struct EnvVar {
  EnvVarInfo info;
  Member member;
};

// Defaults that depend on the machine are computed in defaultFor(); "<...>" marks them here.
const EnvVar kEnvVars[] = {
    {{"PROXY_CONFIG_FILE", EnvType::String, "",
      "TOML file of these same settings, read at start and on SIGHUP; it wins over the "
      "environment"},
     &Config::config_file},
    {{"PORT", EnvType::Number, "11435", "HTTP port of the bundled nginx (scripts/run)"},
     &Config::port},
    {{"PROXY_API_KEY", EnvType::String, "codex-local-secret", "bearer key for gated routes"},
     &Config::api_key},
    {{"PROXY_ENV", EnvType::String, "", "`dev` selects the codev-5 model ids"}, &Config::env},
    {{"PROXY_PROTECT_MODELS", EnvType::Bool, "false", "require the bearer key on /v1/models"},
     &Config::protect_models},
    {{"PROXY_ENABLE_CORS", EnvType::Bool, "true", "CORS headers on every response"},
     &Config::enable_cors},
    {{"PROXY_ENABLE_METRICS", EnvType::Bool, "false", "serve GET /metrics (Prometheus text)"},
     &Config::enable_metrics},
    {{"PROXY_METRICS_LOOPBACK", EnvType::Bool, "true",
      "loopback clients may read /metrics without the bearer key"},
     &Config::metrics_loopback},
    {{"PROXY_TEST_ENDPOINTS", EnvType::Bool, "false", "/__test/* routes and X-Conc-* headers"},
     &Config::test_endpoints},
    {{"CODEX_BACKEND", EnvType::String, "app-server",
      "child protocol: `app-server` (Codex CLI of today) or `proto` (older CLIs)"},
     &Config::codex_backend},
    {{"CODEX_PROVIDER_BASE_URL", EnvType::String, "",
      "Responses API base URL; when set Codex uses it as a custom provider"},
     &Config::provider_base_url},
    {{"CODEX_PROVIDER_API_KEY", EnvType::String, "",
      "key for that provider, handed to Codex in its environment, never on argv"},
     &Config::provider_api_key},
    {{"CODEX_PROVIDER_REQUEST_RETRIES", EnvType::Number, "2",
      "provider request retries before the first byte (stream retries are always 0)"},
     &Config::provider_request_retries},
    {{"CODEX_CONFIG_TOML", EnvType::String, "",
      "TOML file of further Codex settings, passed to app-server children as -c overrides"},
     &Config::codex_config_toml},
    {{"CODEX_HYGIENE", EnvType::Bool, "true",
      "pass flags that stop Codex's plugin sync, analytics, shell snapshot, endless retries"},
     &Config::codex_hygiene},
    {{"CODEX_MODEL", EnvType::String, "gpt-5", "model the child runs; also an accepted id"},
     &Config::codex_model},
    {{"CODEX_BIN", EnvType::String, "codex", "child executable (path or name on PATH)"},
     &Config::codex_bin},
    {{"CODEX_HOME", EnvType::String, "<cwd>/.codex-api", "exported to the child"},
     &Config::codex_home},
    {{"PROXY_SANDBOX_MODE", EnvType::String, "read-only", "sandbox_mode passed to the child"},
     &Config::sandbox_mode},
    {{"PROXY_CODEX_WORKDIR", EnvType::String, "<tmp>/codex-work", "child working directory"},
     &Config::codex_workdir},
    {{"CODEX_FORCE_PROVIDER", EnvType::String, "", "model_provider passed to the child"},
     &Config::force_provider},
    {{"PROXY_DEBUG_PROTO", EnvType::Bool, "false", "log unparsable child lines"},
     &Config::debug_proto},
    {{"PROXY_SSE_KEEPALIVE_MS", EnvType::Number, "15000", "SSE keepalive interval; <=0 off"},
     &Config::keepalive_ms},
    {{"PROXY_TIMEOUT_MS", EnvType::Number, "300000", "total time allowed for one request"},
     &Config::timeout_ms},
    {{"PROXY_STREAM_IDLE_TIMEOUT_MS", EnvType::Number, "300000", "stream ends after this silence"},
     &Config::stream_idle_timeout_ms},
    {{"PROXY_PROTO_IDLE_MS", EnvType::Number, "120000", "non-stream 504 after this silence"},
     &Config::proto_idle_ms},
    {{"PROXY_DEV_TRUNCATE_AFTER_MS", EnvType::Number, "0", "non-stream early truncation; 0 off"},
     &Config::dev_truncate_after_ms},
    {{"PROXY_KILL_GRACE_MS", EnvType::Number, "2000", "SIGTERM to SIGKILL grace for a child"},
     &Config::kill_grace_ms},
    {{"PROXY_SHUTDOWN_GRACE_MS", EnvType::Number, "10000",
      "on SIGTERM, how long open requests may finish before they are ended"},
     &Config::shutdown_grace_ms},
    {{"PROXY_KILL_ON_DISCONNECT", EnvType::Bool, "false", "kill the child when the client goes"},
     &Config::kill_on_disconnect},
    {{"PROXY_SSE_MAX_CONCURRENCY", EnvType::Number, "4", "open streams across the pool; <=0 off"},
     &Config::sse_max_concurrency},
    {{"PROXY_MAX_PROMPT_TOKENS", EnvType::Number, "0", "context-length guard; 0 off"},
     &Config::max_prompt_tokens},
    {{"STREAM_RELEASE_FILE", EnvType::String, "", "test: file written by /__test/conc/release"},
     &Config::stream_release_file},
    {{"PROXY_SUPPRESS_TAIL_AFTER_TOOLS", EnvType::Bool, "false",
      "chat streams withhold text after the last complete tool block"},
     &Config::suppress_tail_after_tools},
    {{"PROXY_STOP_AFTER_TOOLS", EnvType::Bool, "false", "end chat streams after tool blocks"},
     &Config::stop_after_tools},
    {{"PROXY_STOP_AFTER_TOOLS_MODE", EnvType::String, "burst",
      "`first`: end at the first block; `burst`: after a quiet grace period"},
     &Config::stop_after_tools_mode},
    {{"PROXY_STOP_AFTER_TOOLS_GRACE_MS", EnvType::Number, "300", "burst grace period"},
     &Config::stop_after_tools_grace_ms},
    {{"PROXY_TOOL_BLOCK_MAX", EnvType::Number, "0", "end after this many tool blocks; 0 off"},
     &Config::tool_block_max},
    {{"PROXY_RATE_LIMIT_ENABLED", EnvType::Bool, "false", "limit completion requests per key"},
     &Config::rate_limit_enabled},
    {{"PROXY_RATE_LIMIT_WINDOW_MS", EnvType::Number, "60000", "rate limit window"},
     &Config::rate_limit_window_ms},
    {{"PROXY_RATE_LIMIT_MAX", EnvType::Number, "60", "requests per window per key"},
     &Config::rate_limit_max},
    {{"TOKEN_LOG_PATH", EnvType::String, "<tmp>/codex-usage.ndjson", "usage log (NDJSON)"},
     &Config::token_log_path},
    {{"PROTO_LOG_PATH", EnvType::String, "<tmp>/codex-proto-events.ndjson",
      "dev only: child input, output and events (NDJSON)"},
     &Config::proto_log_path},
    {{"PROXY_LOG_PROTO", EnvType::Bool, "true", "dev only: write PROTO_LOG_PATH"},
     &Config::log_proto},
    {{"PROXY_RUNTIME_DIR", EnvType::String, "<tmp>/codex-gateway-<uid>", "socket and slot table"},
     &Config::runtime_dir},
    {{"PROXY_FCGI_SOCKET", EnvType::String, "<runtime>/fcgi.sock", "FastCGI unix socket"},
     &Config::fcgi_socket},
    {{"PROXY_SLOT_TABLE", EnvType::String, "<runtime>/streams.slots", "shared stream-slot table"},
     &Config::slot_table},
    {{"PROXY_WORKERS", EnvType::Number, "<cores>", "worker processes in the pool"},
     &Config::workers},
    {{"PROXY_WORKER_THREADS", EnvType::Number, "<auto>", "request threads per worker"},
     &Config::worker_threads},
};

std::string defaultFor(const EnvVarInfo& info, const Config& config) {
  std::string_view text = info.default_text;
  std::string tmp = std::filesystem::temp_directory_path().string();

  if (text == "<cwd>/.codex-api") {
    return (std::filesystem::current_path() / ".codex-api").string();
  }
  if (text == "<tmp>/codex-usage.ndjson") {
    return tmp + "/codex-usage.ndjson";
  }
  if (text == "<tmp>/codex-proto-events.ndjson") {
    return tmp + "/codex-proto-events.ndjson";
  }
  if (text == "<tmp>/codex-work") {
    return tmp + "/codex-work";
  }
  if (text == "<tmp>/codex-gateway-<uid>") {
    return tmp + "/codex-gateway-" + std::to_string(getuid());
  }
  if (text == "<runtime>/fcgi.sock") {
    return config.runtime_dir + "/fcgi.sock";
  }
  if (text == "<runtime>/streams.slots") {
    return config.runtime_dir + "/streams.slots";
  }
  if (text == "<cores>") {
    return std::to_string(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  }
  if (text == "<auto>") {
    return "0";
  }
  return std::string(text);
}

// The file uses the variables' own names as keys, so one table documents both ways in.
std::optional<std::string> readConfigFile(const std::string& path,
                                          std::map<std::string, std::string>& settings) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& error) {
    return "PROXY_CONFIG_FILE: " + path + ": " + std::string(error.description());
  }
  for (const auto& [key, node] : table) {
    std::string name(key.str());
    bool known = std::any_of(std::begin(kEnvVars), std::end(kEnvVars),
                             [&](const EnvVar& var) { return name == var.info.name; });
    if (!known || name == "PROXY_CONFIG_FILE") {
      return "PROXY_CONFIG_FILE: " + path + ": unknown setting '" + name + "'";
    }
    if (node.is_string()) {
      settings[name] = node.as_string()->get();
    } else if (node.is_integer()) {
      settings[name] = std::to_string(node.as_integer()->get());
    } else if (node.is_boolean()) {
      settings[name] = node.as_boolean()->get() ? "true" : "false";
    } else {
      return "PROXY_CONFIG_FILE: " + path + ": '" + name +
             "' must be a string, an integer or a boolean";
    }
  }
  return std::nullopt;
}

std::optional<std::string> assign(const EnvVar& var, std::string_view text, Config& config) {
  if (auto* s = std::get_if<std::string Config::*>(&var.member)) {
    config.*(*s) = std::string(text);
    return std::nullopt;
  }
  if (auto* n = std::get_if<int64_t Config::*>(&var.member)) {
    auto parsed = parseInteger(text);
    if (!parsed) {
      return std::string(var.info.name) + ": not a whole number: '" + std::string(text) + "'";
    }
    config.*(*n) = *parsed;
    return std::nullopt;
  }
  auto parsed = parseBool(text);
  if (!parsed) {
    return std::string(var.info.name) + ": not a boolean (use true/false, 1/0, yes/no, on/off): '" +
           std::string(text) + "'";
  }
  config.*std::get<bool Config::*>(var.member) = *parsed;
  return std::nullopt;
}

}  // namespace

bool Config::devEnvironment() const {
  return lower(env) == "dev";
}

std::span<const EnvVarInfo> envVarTable() {
  static const auto table = [] {
    std::vector<EnvVarInfo> rows;
    for (const auto& var : kEnvVars) {
      rows.push_back(var.info);
    }
    return rows;
  }();
  return table;
}

std::optional<bool> parseBool(std::string_view text) {
  std::string word = lower(text);

  if (word == "1" || word == "true" || word == "yes" || word == "on") {
    return true;
  }
  if (word == "0" || word == "false" || word == "no" || word == "off") {
    return false;
  }
  return std::nullopt;
}

std::optional<int64_t> parseInteger(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }

  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> loadConfig(const EnvLookup& lookup, Config& config) {
  const char* file = lookup("PROXY_CONFIG_FILE");
  if (file == nullptr || *file == '\0') {
    return loadSettings(lookup, config);
  }
  std::map<std::string, std::string> settings;
  if (auto error = readConfigFile(file, settings)) {
    return error;
  }
  return loadSettings(
      [&](const char* name) -> const char* {
        auto found = settings.find(name);
        return found != settings.end() ? found->second.c_str() : lookup(name);
      },
      config);
}

std::optional<std::string> loadSettings(const EnvLookup& lookup, Config& config) {
  // Rows are ordered so that PROXY_RUNTIME_DIR is set before the paths derived from it.
  for (const auto& var : kEnvVars) {
    const char* raw = lookup(var.info.name);
    std::string text = (raw != nullptr && *raw != '\0') ? raw : defaultFor(var.info, config);

    if (auto error = assign(var, text, config)) {
      return error;
    }
  }

  config.sandbox_mode = lower(config.sandbox_mode);
  config.force_provider = trim(config.force_provider);
  config.stop_after_tools_mode = lower(config.stop_after_tools_mode);
  config.codex_backend = lower(config.codex_backend);
  if (!config.codex_config_toml.empty()) {
    auto loaded = loadCodexOverrides(config.codex_config_toml);
    if (auto* error = std::get_if<std::string>(&loaded)) {
      return *error;
    }
    config.codex_overrides = std::get<std::vector<std::string>>(loaded);
  }
  if (config.codex_backend != "app-server" && config.codex_backend != "proto") {
    return "CODEX_BACKEND: must be app-server or proto, not '" + config.codex_backend + "'";
  }
  if (config.workers < 1) {
    return "PROXY_WORKERS: must be at least 1";
  }
  return std::nullopt;
}

}  // namespace codex
