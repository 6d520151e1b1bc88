// loadConfig reads every variable through a lookup, so a std::map stands in for the environment.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "config.hpp"

namespace codex {
namespace {

using Env = std::map<std::string, std::string>;

EnvLookup lookupIn(const Env& env) {
  return [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
}

Config loaded(const Env& env) {
  Config config;

  auto error = loadConfig(lookupIn(env), config);
  INFO("loadConfig failed: " << error.value_or(""));
  REQUIRE_FALSE(error.has_value());
  return config;
}

std::string loadError(const Env& env) {
  Config config;

  auto error = loadConfig(lookupIn(env), config);
  REQUIRE(error.has_value());
  return *error;
}

std::string tmpPath(std::string_view leaf) {
  return std::filesystem::temp_directory_path().string() + "/" + std::string(leaf);
}

TEST_CASE("defaults apply when nothing is set") {
  Config config = loaded({});

  CHECK(config.port == 11435);
  CHECK(config.api_key == "codex-local-secret");
  CHECK(config.env.empty());
  CHECK(config.codex_model == "gpt-5");
  CHECK(config.codex_bin == "codex");
  CHECK(config.sandbox_mode == "read-only");
  CHECK(config.force_provider.empty());
  CHECK(config.sse_max_concurrency == 4);
  CHECK(config.guardEnabled());
  CHECK(config.keepalive_ms == 15000);
  CHECK(config.timeout_ms == 300000);
  CHECK(config.stream_idle_timeout_ms == 300000);
  CHECK(config.proto_idle_ms == 120000);
  CHECK(config.dev_truncate_after_ms == 0);
  CHECK(config.max_prompt_tokens == 0);
  CHECK(config.enable_cors);
  CHECK_FALSE(config.protect_models);
  CHECK_FALSE(config.kill_on_disconnect);
  CHECK_FALSE(config.test_endpoints);
  CHECK(config.workers >= 1);
}

TEST_CASE("machine-dependent defaults derive from the working and temporary directories") {
  Config config = loaded({});

  CHECK(config.codex_home == (std::filesystem::current_path() / ".codex-api").string());
  CHECK(config.codex_workdir == tmpPath("codex-work"));
  CHECK(config.runtime_dir == tmpPath("codex-gateway-" + std::to_string(getuid())));
  CHECK(config.fcgi_socket == config.runtime_dir + "/fcgi.sock");
  CHECK(config.slot_table == config.runtime_dir + "/streams.slots");
}

TEST_CASE("an empty value counts as unset") {
  Config config = loaded({{"PROXY_TIMEOUT_MS", ""},
                          {"PROXY_SSE_MAX_CONCURRENCY", ""},
                          {"PROXY_API_KEY", ""},
                          {"PROXY_ENABLE_CORS", ""},
                          {"PROXY_SANDBOX_MODE", ""}});

  CHECK(config.timeout_ms == 300000);
  CHECK(config.sse_max_concurrency == 4);
  CHECK(config.api_key == "codex-local-secret");
  CHECK(config.enable_cors);
  CHECK(config.sandbox_mode == "read-only");
}

TEST_CASE("set values replace the defaults") {
  Config config = loaded({{"PORT", "8080"},
                          {"PROXY_API_KEY", "sk-test"},
                          {"CODEX_MODEL", "gpt-5-codex"},
                          {"PROXY_SSE_MAX_CONCURRENCY", "2"}});

  CHECK(config.port == 8080);
  CHECK(config.api_key == "sk-test");
  CHECK(config.codex_model == "gpt-5-codex");
  CHECK(config.sse_max_concurrency == 2);
}

TEST_CASE("booleans accept 1/true/yes/on and 0/false/no/off in any case") {
  for (const char* word : {"1", "true", "TRUE", "True", "yes", "YES", "on", "On"}) {
    CAPTURE(word);
    CHECK(parseBool(word) == true);
    CHECK(loaded({{"PROXY_PROTECT_MODELS", word}}).protect_models);
  }
  for (const char* word : {"0", "false", "FALSE", "False", "no", "NO", "off", "Off"}) {
    CAPTURE(word);
    CHECK(parseBool(word) == false);
    CHECK_FALSE(loaded({{"PROXY_ENABLE_CORS", word}}).enable_cors);
  }
}

TEST_CASE("a value that is not a boolean stops loading with the variable's name") {
  for (const char* word : {"maybe", "2", "enabled", " true"}) {
    std::string error = loadError({{"PROXY_KILL_ON_DISCONNECT", word}});

    CAPTURE(word);
    CHECK_FALSE(parseBool(word).has_value());
    CHECK(error.find("PROXY_KILL_ON_DISCONNECT") != std::string::npos);
    CHECK(error.find(word) != std::string::npos);
  }
}

TEST_CASE("a value that is not a whole number stops loading with the variable's name") {
  for (const char* text : {"5s", "1.5", "abc", "1e3", "0x10"}) {
    std::string error = loadError({{"PROXY_TIMEOUT_MS", text}});

    CAPTURE(text);
    CHECK_FALSE(parseInteger(text).has_value());
    CHECK(error.find("PROXY_TIMEOUT_MS") != std::string::npos);
    CHECK(error.find(text) != std::string::npos);
  }
}

TEST_CASE("numbers tolerate surrounding blanks and may be negative") {
  CHECK(parseInteger(" 42 ") == 42);
  CHECK(loaded({{"PROXY_SSE_KEEPALIVE_MS", "  2500\t"}}).keepalive_ms == 2500);

  Config config = loaded({{"PROXY_SSE_MAX_CONCURRENCY", "-1"}});

  CHECK(config.sse_max_concurrency == -1);
  CHECK_FALSE(config.guardEnabled());
}

TEST_CASE("a concurrency limit of zero turns the stream guard off") {
  CHECK_FALSE(loaded({{"PROXY_SSE_MAX_CONCURRENCY", "0"}}).guardEnabled());
}

TEST_CASE("PROXY_SANDBOX_MODE is lower-cased") {
  CHECK(loaded({{"PROXY_SANDBOX_MODE", "Danger-Full-Access"}}).sandbox_mode ==
        "danger-full-access");
}

TEST_CASE("CODEX_FORCE_PROVIDER is trimmed") {
  CHECK(loaded({{"CODEX_FORCE_PROVIDER", "  openai \t"}}).force_provider == "openai");
  CHECK(loaded({{"CODEX_FORCE_PROVIDER", "   "}}).force_provider.empty());
}

TEST_CASE("socket and slot table paths follow PROXY_RUNTIME_DIR") {
  Config config = loaded({{"PROXY_RUNTIME_DIR", "/run/codex-test"}});

  CHECK(config.runtime_dir == "/run/codex-test");
  CHECK(config.fcgi_socket == "/run/codex-test/fcgi.sock");
  CHECK(config.slot_table == "/run/codex-test/streams.slots");
}

TEST_CASE("an explicit socket path wins over the one derived from PROXY_RUNTIME_DIR") {
  Config config =
      loaded({{"PROXY_RUNTIME_DIR", "/run/codex-test"}, {"PROXY_FCGI_SOCKET", "/tmp/other.sock"}});

  CHECK(config.fcgi_socket == "/tmp/other.sock");
  CHECK(config.slot_table == "/run/codex-test/streams.slots");
}

TEST_CASE("fewer than one worker is a start-up error naming PROXY_WORKERS") {
  CHECK(loadError({{"PROXY_WORKERS", "0"}}).find("PROXY_WORKERS") != std::string::npos);
  CHECK(loaded({{"PROXY_WORKERS", "3"}}).workers == 3);
}

TEST_CASE("PROXY_ENV selects the development environment only for dev, in any case") {
  CHECK(loaded({{"PROXY_ENV", "dev"}}).devEnvironment());
  CHECK(loaded({{"PROXY_ENV", "DEV"}}).devEnvironment());
  CHECK_FALSE(loaded({{"PROXY_ENV", "development"}}).devEnvironment());
  CHECK_FALSE(loaded({}).devEnvironment());
}

TEST_CASE("envVarTable names every variable once") {
  std::set<std::string> names;

  for (const auto& row : envVarTable()) {
    CAPTURE(row.name);
    CHECK(names.insert(row.name).second);
  }
  CHECK(names.size() == envVarTable().size());
}

TEST_CASE("loadConfig reads exactly the variables envVarTable lists") {
  std::set<std::string> asked;
  std::set<std::string> listed;
  Config config;

  auto error = loadConfig(
      [&asked](const char* name) -> const char* {
        asked.insert(name);
        return nullptr;
      },
      config);
  for (const auto& row : envVarTable()) {
    listed.insert(row.name);
  }

  CHECK_FALSE(error.has_value());
  CHECK(asked == listed);
}

// A TOML file in a fresh temporary directory, removed with the test.
class ConfigFile {
 public:
  explicit ConfigFile(const std::string& text) {
    path_ = std::filesystem::temp_directory_path() /
            ("codex-config-test-" + std::to_string(getpid()) + ".toml");
    std::ofstream(path_) << text;
  }
  ~ConfigFile() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

TEST_CASE("PROXY_CONFIG_FILE values win over the environment, which fills the rest") {
  ConfigFile file(
      "PROXY_SSE_MAX_CONCURRENCY = 9\nPROXY_API_KEY = \"from-file\"\nPROXY_ENABLE_METRICS = "
      "true\n");
  Config config = loaded({{"PROXY_CONFIG_FILE", file.path()},
                          {"PROXY_SSE_MAX_CONCURRENCY", "3"},
                          {"PROXY_TIMEOUT_MS", "1234"}});

  CHECK(config.sse_max_concurrency == 9);
  CHECK(config.api_key == "from-file");
  CHECK(config.enable_metrics);
  CHECK(config.timeout_ms == 1234);
  CHECK(config.config_file == file.path());
}

TEST_CASE("a config file value that does not parse names the variable, as the environment does") {
  ConfigFile file("PROXY_TIMEOUT_MS = \"soon\"\n");
  CHECK(loadError({{"PROXY_CONFIG_FILE", file.path()}}) ==
        "PROXY_TIMEOUT_MS: not a whole number: 'soon'");
}

TEST_CASE("a config file with an unknown key, a table or a float is refused whole") {
  for (const char* text : {"PROXY_SSE_MAX_CONCURENCY = 2\n", "[PROXY_TIMEOUT_MS]\nx = 1\n",
                           "PROXY_TIMEOUT_MS = 1.5\n", "PROXY_CONFIG_FILE = \"/elsewhere\"\n"}) {
    CAPTURE(text);
    ConfigFile file(text);
    std::string error = loadError({{"PROXY_CONFIG_FILE", file.path()}});
    CHECK(error.starts_with("PROXY_CONFIG_FILE: " + file.path() + ": "));
  }
}

TEST_CASE("a config file that is missing or not TOML stops loading with its path") {
  CHECK(loadError({{"PROXY_CONFIG_FILE", "/nonexistent/gateway.toml"}})
            .starts_with("PROXY_CONFIG_FILE: /nonexistent/gateway.toml: "));
  ConfigFile file("PROXY_TIMEOUT_MS = = 3\n");
  CHECK(loadError({{"PROXY_CONFIG_FILE", file.path()}})
            .starts_with("PROXY_CONFIG_FILE: " + file.path() + ": "));
}

}  // namespace
}  // namespace codex
