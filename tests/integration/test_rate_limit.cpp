// The shared rate limiter on completion routes, through nginx to several workers.
#include <doctest/doctest.h>

#include "gateway.hpp"
#include "json.hpp"

using namespace codex::test;

namespace {

const std::string kChat = R"({"model":"codex-5","messages":[{"role":"user","content":"hi"}]})";

GatewayOptions limited(int max) {
  return {2,
          {{"PROXY_RATE_LIMIT_ENABLED", "true"},
           {"PROXY_RATE_LIMIT_MAX", std::to_string(max)},
           {"PROXY_RATE_LIMIT_WINDOW_MS", "60000"},
           {"PROXY_WORKER_THREADS", "1"}}};
}

}  // namespace

TEST_CASE("the budget is shared by every worker and spelling the path differently counts too") {
  Gateway gw(limited(3));

  // One thread per worker and sequential requests: the calls alternate between workers.
  CHECK(gw.post("/v1/chat/completions", kChat).status == 200);
  CHECK(gw.post("/v1/chat/completions/", kChat).status == 200);
  CHECK(gw.post("/V1/Chat/Completions", kChat).status == 200);
  Response over = gw.post("/v1/completions", R"({"prompt":"hi"})");
  CHECK(over.status == 429);
  Json body(over.body);
  CHECK(body.str("/error/code") == "rate_limited");
  CHECK(body.str("/error/type") == "rate_limit_error");
  int retry = std::atoi(over.header("retry-after").c_str());
  CHECK(retry >= 1);
  CHECK(retry <= 60);
  CHECK(gw.get("/v1/models").status == 200);  // only completions are limited
}

TEST_CASE("unauthenticated requests spend their own budget and get 429 before 401") {
  Gateway gw(limited(2));
  Headers wrong = {"Content-Type: application/json", "Authorization: Bearer wrong"};

  CHECK(request("POST", gw.url("/v1/chat/completions"), kChat, wrong).status == 401);
  CHECK(request("POST", gw.url("/v1/chat/completions"), kChat, wrong).status == 401);
  CHECK(request("POST", gw.url("/v1/chat/completions"), kChat, wrong).status == 429);
  CHECK(gw.post("/v1/chat/completions", kChat).status == 200);  // another key, another budget
}
