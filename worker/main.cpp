// codex-worker: the FastCGI gateway between nginx and the Codex CLI.
//
//   codex-worker [--workers N] [--threads N] [--socket PATH] [--slot-table PATH]
//                [--log-file PATH]      run the pool (the supervisor and its workers)
//   codex-worker --dump-slots [PATH]    print the stream slot table as JSON
//   codex-worker --print-env            print every environment variable as a Markdown table
//
// Everything else is configured through the environment; see docs/operations.md.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "config.hpp"
#include "log.hpp"
#include "pool.hpp"
#include "slot_table.hpp"

namespace {

int usage() {
  fprintf(stderr,
          "usage: codex-worker [--workers N] [--threads N] [--socket PATH] [--slot-table PATH] "
          "[--log-file PATH]\n"
          "       codex-worker --dump-slots [PATH]\n"
          "       codex-worker --print-env\n");
  return 2;
}

int printEnv() {
  printf("| Variable | Default | Type | Meaning |\n| --- | --- | --- | --- |\n");
  for (const auto& row : codex::envVarTable()) {
    const char* type = row.type == codex::EnvType::Bool     ? "boolean"
                       : row.type == codex::EnvType::Number ? "integer"
                                                            : "string";
    bool empty = *row.default_text == '\0';
    printf("| `%s` | %s%s%s | %s | %s |\n", row.name, empty ? "" : "`",
           empty ? "(empty)" : row.default_text, empty ? "" : "`", type, row.meaning);
  }
  return 0;
}

int dumpSlots(const std::string& path) {
  codex::SlotTable table;

  if (auto error = codex::SlotTable::open(path, table)) {
    fprintf(stderr, "%s\n", error->c_str());
    return 1;
  }
  printf("%s\n", table.dumpJson().c_str());
  return 0;
}

// Every open stream costs a few descriptors (connection, three pipes, the thread's loop).
void raiseFileLimit() {
  rlimit limit{};

  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

std::string execShimPath() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / "codex-exec").string();
}

}  // namespace

int main(int argc, char** argv) {
  codex::Config config;
  if (auto error = codex::loadConfig(getenv, config)) {
    fprintf(stderr, "codex-worker: %s\n", error->c_str());
    return 2;
  }
  codex::PoolOptions options{execShimPath(), ""};

  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    bool has_value = i + 1 < argc;
    if (arg == "--print-env") {
      return printEnv();
    } else if (arg == "--dump-slots") {
      return dumpSlots(has_value ? argv[i + 1] : config.slot_table);
    } else if (arg == "--workers" && has_value) {
      config.workers = std::max(1, atoi(argv[++i]));
    } else if (arg == "--threads" && has_value) {
      config.worker_threads = std::max(1, atoi(argv[++i]));
    } else if (arg == "--socket" && has_value) {
      config.fcgi_socket = argv[++i];
    } else if (arg == "--slot-table" && has_value) {
      config.slot_table = argv[++i];
    } else if (arg == "--log-file" && has_value) {
      options.log_file = argv[++i];
    } else {
      return usage();
    }
  }
  if (access(options.exec_shim.c_str(), X_OK) != 0) {
    fprintf(stderr, "codex-worker: %s is missing; build it with the worker\n",
            options.exec_shim.c_str());
    return 2;
  }
  raiseFileLimit();
  codex::initLogging("gateway", options.log_file);
  return codex::runSupervisor(config, options);
}
