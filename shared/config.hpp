// The gateway's configuration: every environment variable it reads, parsed in one place.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace codex {

struct Config {
  // HTTP surface.
  int64_t port = 11435;
  std::string api_key;
  std::string env;
  bool protect_models = false;
  bool enable_cors = true;
  bool test_endpoints = false;
  bool enable_metrics = false;
  bool metrics_loopback = true;
  std::string config_file;

  // The child.
  std::string codex_backend;  // app-server or proto
  std::string provider_base_url;
  std::string provider_api_key;
  bool codex_hygiene = true;
  int64_t provider_request_retries = 0;
  std::string codex_config_toml;
  std::vector<std::string> codex_overrides;  // from codex_config_toml, as `key=value`
  std::string codex_model;
  std::string codex_bin;
  std::string codex_home;
  std::string sandbox_mode;
  std::string codex_workdir;
  std::string force_provider;
  bool debug_proto = false;

  // Streams and timers.
  int64_t keepalive_ms = 0;
  int64_t timeout_ms = 0;
  int64_t stream_idle_timeout_ms = 0;
  int64_t proto_idle_ms = 0;
  int64_t dev_truncate_after_ms = 0;
  int64_t kill_grace_ms = 0;
  int64_t shutdown_grace_ms = 0;
  bool kill_on_disconnect = false;
  int64_t sse_max_concurrency = 0;
  int64_t max_prompt_tokens = 0;
  std::string stream_release_file;

  // Tool-block shaping (chat streams only).
  bool suppress_tail_after_tools = false;
  bool stop_after_tools = false;
  std::string stop_after_tools_mode;
  int64_t stop_after_tools_grace_ms = 0;
  int64_t tool_block_max = 0;

  // Rate limiter and usage log.
  bool rate_limit_enabled = false;
  int64_t rate_limit_window_ms = 0;
  int64_t rate_limit_max = 0;
  std::string token_log_path;
  std::string proto_log_path;
  bool log_proto = true;

  // The worker pool.
  std::string runtime_dir;
  std::string fcgi_socket;
  std::string slot_table;
  int64_t workers = 0;
  int64_t worker_threads = 0;

  bool devEnvironment() const;
  bool guardEnabled() const { return sse_max_concurrency > 0; }
};

enum class EnvType { String, Number, Bool };

// One row of the table every other part (docs, `--print-env`, tests) reads.
struct EnvVarInfo {
  const char* name;
  EnvType type;
  const char* default_text;
  const char* meaning;
};

std::span<const EnvVarInfo> envVarTable();

using EnvLookup = std::function<const char*(const char*)>;

// Fills `config` from PROXY_CONFIG_FILE, when the environment names one, and the environment.
// Returns the error text for the first value that does not parse (naming the variable), or
// nothing on success.
std::optional<std::string> loadConfig(const EnvLookup& lookup, Config& config);
// The same from `lookup` alone, with no file.
std::optional<std::string> loadSettings(const EnvLookup& lookup, Config& config);

// Strict boolean words: 1|true|yes|on and 0|false|no|off, case-insensitive.
std::optional<bool> parseBool(std::string_view text);
std::optional<int64_t> parseInteger(std::string_view text);

}  // namespace codex
