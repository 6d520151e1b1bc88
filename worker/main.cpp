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
#include <optional>
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
  // Command-line settings win over the environment and the file, at start and on every reload.
  std::optional<int64_t> workers, threads;
  std::optional<std::string> socket, slot_table;
  codex::PoolOptions options{execShimPath(), ""};
  bool dump_slots = false;
  std::optional<std::string> dump_path;

  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    bool has_value = i + 1 < argc;
    if (arg == "--print-env") {
      return printEnv();
    } else if (arg == "--dump-slots") {
      dump_slots = true;
      if (has_value) {
        dump_path = argv[++i];
      }
    } else if (arg == "--workers" && has_value) {
      workers = std::max(1, atoi(argv[++i]));
    } else if (arg == "--threads" && has_value) {
      threads = std::max(1, atoi(argv[++i]));
    } else if (arg == "--socket" && has_value) {
      socket = argv[++i];
    } else if (arg == "--slot-table" && has_value) {
      slot_table = argv[++i];
    } else if (arg == "--log-file" && has_value) {
      options.log_file = argv[++i];
    } else {
      return usage();
    }
  }
  codex::ConfigLoader load = [&](codex::Config& config) -> std::optional<std::string> {
    if (auto error = codex::loadConfig(getenv, config)) {
      return error;
    }
    config.workers = workers.value_or(config.workers);
    config.worker_threads = threads.value_or(config.worker_threads);
    config.fcgi_socket = socket.value_or(config.fcgi_socket);
    config.slot_table = slot_table.value_or(config.slot_table);
    return std::nullopt;
  };
  codex::Config config;
  if (auto error = load(config)) {
    fprintf(stderr, "codex-worker: %s\n", error->c_str());
    return 2;
  }
  if (dump_slots) {
    return dumpSlots(dump_path.value_or(config.slot_table));
  }
  if (access(options.exec_shim.c_str(), X_OK) != 0) {
    fprintf(stderr, "codex-worker: %s is missing; build it with the worker\n",
            options.exec_shim.c_str());
    return 2;
  }
  raiseFileLimit();
  codex::initLogging("gateway", options.log_file);
  return codex::runSupervisor(config, load, options);
}
