// spdlog set up for machine-read JSON lines; see log.hpp.
#include "log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace codex {

void initLogging(std::string_view role, std::string_view path) {
  std::shared_ptr<spdlog::logger> logger;

  if (path.empty()) {
    logger = spdlog::stdout_logger_mt("codex");
  } else {
    logger = spdlog::basic_logger_mt("codex", std::string(path));
  }
  // The message part is a list of JSON fields, so the pattern closes the object around it.
  logger->set_pattern(fmt::format(R"({{"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","pid":%P,)"
                                  R"("role":"{}",%v}})",
                                  role),
                      spdlog::pattern_time_type::utc);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  if (const char* level = getenv("PROXY_LOG_LEVEL"); level != nullptr && *level != '\0') {
    spdlog::set_level(spdlog::level::from_str(level));
  }
}

LogLine::LogLine(std::string_view message) {
  writer_.beginObject();
  writer_.field("msg", message);
}

void LogLine::emit(spdlog::level::level_enum level) {
  if (!spdlog::should_log(level)) {
    return;
  }
  // Drop the '{' the writer opened: the logger's pattern supplies the braces.
  std::string_view fields = writer_.str();
  spdlog::log(level, "{}", fields.substr(1));
}

}  // namespace codex
