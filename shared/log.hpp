// Structured logging: every line is one JSON object with ts, level, pid and named fields.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "json_writer.hpp"

namespace codex {

// Sends JSON lines to stdout (or to `path` when not empty). `role` names the process kind.
void initLogging(std::string_view role, std::string_view path = {});

// Builds one log line: LogLine("stream ended").with("req_id", id).with("status", 200).info();
class LogLine {
 public:
  explicit LogLine(std::string_view message);

  template <typename T>
  LogLine& with(std::string_view key, const T& value) {
    writer_.field(key, value);
    return *this;
  }

  void debug() { emit(spdlog::level::debug); }
  void info() { emit(spdlog::level::info); }
  void warn() { emit(spdlog::level::warn); }
  void error() { emit(spdlog::level::err); }

 private:
  void emit(spdlog::level::level_enum level);

  JsonWriter writer_;
};

}  // namespace codex
