// Stopping the pool: open streams get their grace period and then a clean end, nothing is left
// behind, and new connections are refused at once.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "gateway.hpp"
#include "json.hpp"

using namespace codex::test;

namespace {

const std::string kStream =
    R"({"model":"codex-5","stream":true,"messages":[{"role":"user","content":"hold"}]})";

bool socketAccepts(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  memcpy(address.sun_path, path.c_str(), path.size() + 1);
  bool connected = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return connected;
}

}  // namespace

TEST_CASE("SIGTERM lets open streams run out their grace, then ends them cleanly") {
  Gateway gw({2,
              {{"FAKE_CODEX_MODE", "long"},
               {"PROXY_SHUTDOWN_GRACE_MS", "500"},
               {"PROXY_SSE_MAX_CONCURRENCY", "4"}}});
  std::vector<std::unique_ptr<StreamClient>> streams;

  for (int i = 0; i < 2; ++i) {
    streams.push_back(std::make_unique<StreamClient>(gw.url("/v1/chat/completions"), kStream,
                                                     jsonHeaders(gw.apiKey())));
    REQUIRE(streams.back()->waitForBody("tick-0"));
  }
  auto children = Gateway::childrenOf(gw.workerPids());
  REQUIRE(children.size() == 2);

  // The pool must be gone within its grace period plus two seconds, with exit code 0.
  CHECK(gw.stopPool(std::chrono::milliseconds(2500)) == 0);
  for (auto& stream : streams) {
    auto frames = sseData(stream->finish().body);
    REQUIRE(frames.size() >= 3);
    CHECK(Json(frames[frames.size() - 2]).str("/error/code") == "server_shutdown");
    CHECK(frames.back() == "[DONE]");
    CHECK(stream->snapshot().body.find("tick-1") != std::string::npos);  // it kept streaming
  }
  for (pid_t child : children) {
    CHECK_FALSE(processAlive(child));
  }
}

TEST_CASE("SIGTERM on an idle pool exits at once and refuses later connections") {
  Gateway gw;
  std::string socket_path = gw.file("fcgi.sock");
  REQUIRE(socketAccepts(socket_path));

  CHECK(gw.stopPool(std::chrono::seconds(2)) == 0);
  CHECK_FALSE(socketAccepts(socket_path));
  Response after = gw.get("/healthz");
  CHECK(after.status == 502);
  CHECK(Json(after.body).str("/error/code") == "bad_gateway");
}

TEST_CASE("liveness and readiness say why a worker is not ready") {
  Gateway gw;
  Response live = gw.get("/livez");
  CHECK(live.status == 200);
  CHECK(Json(live.body).boolean("/live") == true);
  Response ready = gw.get("/readyz");
  CHECK(ready.status == 200);
  CHECK(Json(ready.body).boolean("/checks/child_binary") == true);

  Gateway broken({2, {{"CODEX_BIN", "/nonexistent/codex"}}});
  Response not_ready = broken.get("/readyz");
  CHECK(not_ready.status == 503);
  CHECK(Json(not_ready.body).boolean("/ready") == false);
  CHECK(Json(not_ready.body).str("/reason") == "spawn /nonexistent/codex ENOENT");
}
