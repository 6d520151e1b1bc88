// CODEX_CONFIG_TOML: operator settings flattened into Codex -c overrides.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "codex_overrides.hpp"

using namespace codex;

namespace {

std::string writeTemp(const std::string& text) {
  char path[] = "/tmp/codex-overrides-XXXXXX";
  int fd = mkstemp(path);
  FILE* file = fdopen(fd, "w");
  fputs(text.c_str(), file);
  fclose(file);
  return path;
}

}  // namespace

TEST_CASE("nested tables become dotted keys with their values printed as TOML") {
  std::string path = writeTemp(
      "model_reasoning_summary = \"none\"\n"
      "[model_providers.gateway.http_headers]\n\"X-Org\" = \"acme\"\n"
      "[tools]\nweb_search = false\nretries = 3\nlist = [1, 2]\n");

  auto loaded = loadCodexOverrides(path);
  unlink(path.c_str());
  REQUIRE(std::holds_alternative<std::vector<std::string>>(loaded));
  auto overrides = std::get<std::vector<std::string>>(loaded);
  auto has = [&](const std::string& item) {
    return std::find(overrides.begin(), overrides.end(), item) != overrides.end();
  };
  CHECK(overrides.size() == 5);
  CHECK(has("model_reasoning_summary='none'"));  // a TOML literal string
  CHECK(has("model_providers.gateway.http_headers.X-Org='acme'"));
  CHECK(has("tools.web_search=false"));
  CHECK(has("tools.retries=3"));
  CHECK(has("tools.list=[ 1, 2 ]"));
}

TEST_CASE("a file that is not TOML stops start-up with the file and line") {
  std::string path = writeTemp("ok = 1\nbad = = 2\n");

  auto loaded = loadCodexOverrides(path);
  unlink(path.c_str());
  REQUIRE(std::holds_alternative<std::string>(loaded));
  std::string error = std::get<std::string>(loaded);
  CHECK(error.find(path) != std::string::npos);
  CHECK(error.find("line 2") != std::string::npos);
}
