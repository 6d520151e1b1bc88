// GET /v1/usage and GET /v1/usage/raw: the usage log read back, behind the bearer key (Q20).
#pragma once

#include "config.hpp"
#include "fcgi_exchange.hpp"
#include "http_request.hpp"

namespace codex {

// Totals, optionally bucketed by UTC hour or day, over [start, end).
void serveUsage(FcgiExchange& io, const Config& config, const HttpRequest& request);

// The last `limit` entries, oldest first.
void serveUsageRaw(FcgiExchange& io, const Config& config, const HttpRequest& request);

}  // namespace codex
