// Complete JSON responses (everything that is not a stream).
#pragma once

#include <string_view>

#include "fcgi_exchange.hpp"
#include "openai.hpp"

namespace codex {

void sendJson(FcgiExchange& io, int status, std::string_view body);
void sendError(FcgiExchange& io, const ApiError& error);

}  // namespace codex
