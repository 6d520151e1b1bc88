// CODEX_BIN resolution; see codex_binary.hpp.
#include "codex_binary.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>

#include <fmt/format.h>

namespace codex {
namespace {

// The npm package's `codex` is a Node wrapper that spawns the native binary as its own child:
// about 70 ms and 44 MB more per request, and a process our signals reach only second-hand.
// Given the wrapper or the package directory, the native binary it would run is used instead.
std::string nativeCodex(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path real = fs::canonical(path, ec);
  fs::path package;

  if (!ec && fs::is_directory(real)) {
    package = real;
  } else if (!ec && real.extension() == ".js" && real.parent_path().filename() == "bin") {
    package = real.parent_path().parent_path();
  } else {
    return path;
  }
  for (const char* triple : {"x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"}) {
    std::string arch = std::string(triple).starts_with("x86_64") ? "x64" : "arm64";
    std::string platform = "@openai/codex-linux-" + arch + "/vendor/" + triple;
    for (const fs::path& candidate :
         {package / "node_modules" / platform / "bin/codex",
          package.parent_path() / ("codex-linux-" + arch) / "vendor" / triple / "bin/codex",
          package / "vendor" / triple / "codex/codex", package / "vendor" / triple / "bin/codex"}) {
      if (access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate)) {
        return candidate.string();
      }
    }
  }
  return path;
}

}  // namespace

// CODEX_BIN as the spec resolves it: absolute as is, relative to our cwd when it has a slash,
// else the first executable match on PATH.
std::optional<std::string> resolveBinary(const std::string& name, std::string& error) {
  namespace fs = std::filesystem;
  std::string found;

  if (name.find('/') != std::string::npos) {
    found = fs::absolute(name).string();
  } else {
    const char* path = getenv("PATH");
    std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
    while (found.empty() && !dirs.empty()) {
      size_t colon = dirs.find(':');
      std::string candidate = std::string(dirs.substr(0, colon)) + "/" + name;
      dirs = colon == std::string_view::npos ? "" : dirs.substr(colon + 1);
      if (access(candidate.c_str(), X_OK) == 0) {
        found = candidate;
      }
    }
  }
  found = found.empty() ? found : nativeCodex(found);
  if (found.empty() || access(found.c_str(), X_OK) != 0 || std::filesystem::is_directory(found)) {
    error = fmt::format("spawn {} {}", name, found.empty() ? "ENOENT" : strerrorname_np(errno));
    return std::nullopt;
  }
  return found;
}

}  // namespace codex
