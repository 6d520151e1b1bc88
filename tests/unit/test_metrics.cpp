// The shared metrics page and its Prometheus text: what a scrape shows for what was recorded.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "metrics.hpp"

namespace codex {
namespace {

bool hasLine(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

TEST_CASE("paths map to a fixed set of route labels") {
  CHECK(metricRouteFor("/v1/chat/completions") == MetricRoute::Chat);
  CHECK(metricRouteFor("/v1/models/gpt-5") == MetricRoute::Models);
  CHECK(metricRouteFor("/v1/usage/raw") == MetricRoute::Usage);
  CHECK(metricRouteFor("/__test/conc") == MetricRoute::Test);
  CHECK(metricRouteFor("/v1/chat/completions/extra") == MetricRoute::Other);
  CHECK(metricRouteFor("/wp-admin") == MetricRoute::Other);
  CHECK(routeLabel(MetricRoute::Other) == "other");
}

TEST_CASE("run end reasons map to stream end labels; request errors are not stream ends") {
  CHECK(streamEndFor("done") == StreamEnd::Done);
  CHECK(streamEndFor("client_gone") == StreamEnd::ClientGone);
  CHECK(streamEndFor("child_exit") == StreamEnd::ChildError);
  CHECK(streamEndFor("child_failed") == StreamEnd::ChildError);
  CHECK(streamEndFor("backend_error") == StreamEnd::ChildError);
  CHECK(streamEndFor("request_timeout") == StreamEnd::RequestTimeout);
  CHECK(streamEndFor("shutdown") == StreamEnd::Shutdown);
  CHECK(streamEndFor("cap_reached") == StreamEnd::Count);
  CHECK(streamEndFor("child_error") == StreamEnd::Count);  // a label, not a reason
}

TEST_CASE("a scrape shows recorded counts, zero series for fixed labels, and the gauges") {
  PoolMetrics metrics;
  REQUIRE(metrics.create());
  metrics.request(MetricRoute::Chat, 200);
  metrics.request(MetricRoute::Chat, 200);
  metrics.request(MetricRoute::Chat, 429);
  metrics.request(MetricRoute::Health, 0);
  metrics.request(MetricRoute::Health, 999);  // not a status: counted with the unanswered
  metrics.admission(true);
  metrics.admission(false);
  metrics.admission(false);
  metrics.streamEnded(StreamEnd::ClientGone);
  metrics.streamEnded(StreamEnd::Count);  // ignored
  metrics.rateLimited();
  metrics.page()->young_deaths = 5;
  metrics.page()->last_respawn_delay_ms = 1600;

  std::string text = renderMetrics(*metrics.page(), {3, 8});
  INFO(text);
  CHECK(hasLine(text, "codex_gateway_open_streams 3"));
  CHECK(hasLine(text, "codex_gateway_stream_limit 8"));
  CHECK(hasLine(text,
                R"(codex_gateway_requests_total{route="/v1/chat/completions",status="200"} 2)"));
  CHECK(hasLine(text,
                R"(codex_gateway_requests_total{route="/v1/chat/completions",status="429"} 1)"));
  CHECK(hasLine(text, R"(codex_gateway_requests_total{route="/healthz",status="0"} 2)"));
  CHECK(text.find(R"(route="/v1/models")") == std::string::npos);  // nothing recorded there
  CHECK(hasLine(text, R"(codex_gateway_stream_admissions_total{result="admitted"} 1)"));
  CHECK(hasLine(text, R"(codex_gateway_stream_admissions_total{result="rejected"} 2)"));
  CHECK(hasLine(text, R"(codex_gateway_stream_ends_total{reason="client_gone"} 1)"));
  CHECK(hasLine(text, R"(codex_gateway_stream_ends_total{reason="done"} 0)"));
  CHECK(hasLine(text, "codex_gateway_rate_limited_total 1"));
  CHECK(hasLine(text, "codex_gateway_worker_young_deaths 5"));
  CHECK(hasLine(text, "codex_gateway_worker_respawn_delay_seconds 1.6"));
  CHECK(text.find("# TYPE codex_gateway_requests_total counter") != std::string::npos);
}

TEST_CASE("first-byte times land in cumulative buckets with their sum") {
  PoolMetrics metrics;
  REQUIRE(metrics.create());
  metrics.firstByte(0.004);
  metrics.firstByte(0.005);  // a bound belongs to its own bucket
  metrics.firstByte(0.2);
  metrics.firstByte(60);

  std::string text = renderMetrics(*metrics.page(), {});
  INFO(text);
  CHECK(hasLine(text, R"(codex_gateway_child_first_byte_seconds_bucket{le="0.005"} 2)"));
  CHECK(hasLine(text, R"(codex_gateway_child_first_byte_seconds_bucket{le="0.1"} 2)"));
  CHECK(hasLine(text, R"(codex_gateway_child_first_byte_seconds_bucket{le="0.25"} 3)"));
  CHECK(hasLine(text, R"(codex_gateway_child_first_byte_seconds_bucket{le="10"} 3)"));
  CHECK(hasLine(text, R"(codex_gateway_child_first_byte_seconds_bucket{le="+Inf"} 4)"));
  CHECK(hasLine(text, "codex_gateway_child_first_byte_seconds_count 4"));
  CHECK(hasLine(text, "codex_gateway_child_first_byte_seconds_sum 60.209"));
}

TEST_CASE("a worker's counts reach its supervisor through the shared page") {
  PoolMetrics metrics;
  REQUIRE(metrics.create());
  pid_t pid = fork();
  if (pid == 0) {
    metrics.request(MetricRoute::Models, 200);
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(metrics.page()->requests[static_cast<int>(MetricRoute::Models)][200] == 1);
}

}  // namespace
}  // namespace codex
