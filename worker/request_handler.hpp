// Routes one FastCGI request to its handler and logs its summary line.
#pragma once

#include <fcgiapp.h>
#include <uv.h>

#include "worker_context.hpp"

namespace codex {

// Serves one accepted request on the calling thread.
void serveRequest(WorkerContext& context, FCGX_Request& request);

}  // namespace codex
