// A mock of the OpenAI Responses API (POST /v1/responses, SSE) for driving the real Codex CLI in
// tests. Node only, no dependencies.
//
//   node server.mjs [PORT] [--exit-on-stdin-eof]
//
// Listens on 127.0.0.1:PORT (0 or absent: any free port) and prints `listening <port>` on stdout
// once it accepts connections. With --exit-on-stdin-eof it exits when its stdin reaches EOF, so a
// test that dies cannot leave it behind (the test keeps a pipe to its stdin open).
//
// One process serves every scenario. The mode is chosen by the text of the LAST user message of
// the request: the first `mock:<mode>` token in it selects the mode, no token means `normal`.
// The gateway cannot set request headers on Codex's upstream requests, but it does pass the user's
// prompt through, so a test picks the mode with its prompt (e.g. "mock:error500").
//
//   normal    200, SSE: deltas "Hello", " from", " mock." 5 ms apart; usage input 12, output 3.
//   slow      200, SSE: 25 deltas ("Hello", " from", " mock.", " tick 3", ...) 200 ms apart
//             (about 5 s in all), for client-disconnect tests; usage input 12, output 25.
//   error500  500 with an OpenAI-style JSON error body.
//   hang      accepts the request and never sends response headers.
//   any other `mock:<word>` is answered with 400, so a typo in a test shows up as an error.
//
// SSE events, in order: response.created, response.in_progress, response.output_item.added,
// response.content_part.added, response.output_text.delta x N, response.output_text.done,
// response.content_part.done, response.output_item.done, response.completed (with usage
// {input_tokens, input_tokens_details:{cached_tokens:0}, output_tokens,
// output_tokens_details:{reasoning_tokens:0}, total_tokens}). This is the stream Codex 0.169.0
// accepts (see /work/shared/notes/REAL_CODEX.md section 1).
//
// Every request is logged to stderr as one JSON line (method, path, the headers of interest, a
// short body summary), and so is every upstream connection that Codex closes before the answer
// ended ("client closed"). `GET /__mock/log` returns the same lines, so a test can check, for
// example, that a disconnect or a deadline really closed Codex's upstream request.

import http from "node:http";

const NORMAL_DELTAS = ["Hello", " from", " mock."];
const NORMAL_GAP_MS = 5;
const SLOW_DELTA_COUNT = 25;
const SLOW_GAP_MS = 200;
const INPUT_TOKENS = 12;
const LOGGED_HEADERS = [
  "content-type",
  "accept",
  "originator",
  "user-agent",
  "session-id",
  "thread-id",
  "x-client-request-id",
];

const events = [];
let requestCount = 0;

function log(entry) {
  const line = JSON.stringify({ at: new Date().toISOString(), ...entry });
  events.push(line);
  process.stderr.write(line + "\n");
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// The text of the last `user` message in a Responses API `input` array.
function lastUserText(body) {
  const input = Array.isArray(body?.input) ? body.input : [];
  for (let i = input.length - 1; i >= 0; --i) {
    const item = input[i];
    if (item?.role !== "user") {
      continue;
    }
    if (typeof item.content === "string") {
      return item.content;
    }
    if (Array.isArray(item.content)) {
      return item.content
        .filter((part) => typeof part?.text === "string")
        .map((part) => part.text)
        .join("");
    }
  }
  return "";
}

function modeOf(text) {
  const match = /mock:([A-Za-z0-9_-]+)/.exec(text);
  return match ? match[1] : "normal";
}

function slowDeltas() {
  const deltas = [...NORMAL_DELTAS];
  while (deltas.length < SLOW_DELTA_COUNT) {
    deltas.push(` tick ${deltas.length}`);
  }
  return deltas;
}

// Which headers the request carried: values for the harmless ones, only presence for the key.
function headerSummary(headers) {
  const out = {};
  for (const name of LOGGED_HEADERS) {
    if (headers[name] !== undefined) {
      out[name] = headers[name];
    }
  }
  if (headers.authorization !== undefined) {
    const [scheme] = headers.authorization.split(" ");
    out.authorization = `${scheme} <${headers.authorization.length - scheme.length - 1} chars>`;
  }
  return out;
}

function bodySummary(raw, body) {
  const text = lastUserText(body);
  return {
    bytes: raw.length,
    model: body?.model,
    stream: body?.stream,
    input_items: Array.isArray(body?.input) ? body.input.length : null,
    tools: Array.isArray(body?.tools) ? body.tools.length : null,
    last_user_text: text.length > 80 ? text.slice(0, 80) + "..." : text,
  };
}

function sendJson(res, status, value) {
  const text = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function sendSse(res, type, fields) {
  res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...fields })}\n\n`);
}

// Streams one assistant message, delta by delta, unless Codex closes the connection first.
async function streamAnswer(res, id, model, deltas, gapMs) {
  const responseId = `resp_mock_${id}`;
  const itemId = `msg_mock_${id}`;
  const created = Math.floor(Date.now() / 1000);
  const response = { id: responseId, object: "response", created_at: created, model, output: [] };
  const text = deltas.join("");
  const part = (value) => ({ type: "output_text", text: value, annotations: [] });
  const item = (status, content) => ({
    id: itemId,
    type: "message",
    status,
    role: "assistant",
    content,
  });
  const where = { item_id: itemId, output_index: 0, content_index: 0 };
  let closed = false;
  res.on("close", () => {
    closed = !res.writableFinished;
  });

  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  sendSse(res, "response.created", { response: { ...response, status: "in_progress" } });
  sendSse(res, "response.in_progress", { response: { ...response, status: "in_progress" } });
  sendSse(res, "response.output_item.added", { output_index: 0, item: item("in_progress", []) });
  sendSse(res, "response.content_part.added", { ...where, part: part("") });
  for (const delta of deltas) {
    await sleep(gapMs);
    if (closed) {
      return;
    }
    sendSse(res, "response.output_text.delta", { ...where, delta });
  }
  sendSse(res, "response.output_text.done", { ...where, text });
  sendSse(res, "response.content_part.done", { ...where, part: part(text) });
  const done = item("completed", [part(text)]);
  sendSse(res, "response.output_item.done", { output_index: 0, item: done });
  const usage = {
    input_tokens: INPUT_TOKENS,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: deltas.length,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: INPUT_TOKENS + deltas.length,
  };
  sendSse(res, "response.completed", {
    response: { ...response, status: "completed", output: [done], usage },
  });
  res.end();
}

async function answerResponses(req, res, raw) {
  const id = ++requestCount;
  let body = null;
  try {
    body = JSON.parse(raw);
  } catch {
    body = null;
  }
  const mode = modeOf(lastUserText(body));
  const started = Date.now();

  log({
    request: id,
    method: req.method,
    path: req.url,
    mode,
    headers: headerSummary(req.headers),
    body: bodySummary(raw, body),
  });
  res.on("close", () => {
    if (!res.writableFinished) {
      log({ request: id, mode, event: "client closed", after_ms: Date.now() - started });
    }
  });

  if (body === null) {
    sendJson(res, 400, { error: { message: "mock: body is not JSON", type: "invalid_request" } });
    return;
  }
  const model = body.model ?? "mock-model";
  switch (mode) {
    case "normal":
      await streamAnswer(res, id, model, NORMAL_DELTAS, NORMAL_GAP_MS);
      return;
    case "slow":
      await streamAnswer(res, id, model, slowDeltas(), SLOW_GAP_MS);
      return;
    case "error500":
      sendJson(res, 500, {
        error: { message: "mock internal error", type: "server_error", param: null, code: null },
      });
      return;
    case "hang":
      return;  // Never answer; the connection stays open until Codex or the server closes it.
    default:
      sendJson(res, 400, {
        error: { message: `mock: unknown mode ${mode}`, type: "invalid_request", code: null },
      });
  }
}

function onRequest(req, res) {
  const chunks = [];

  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const raw = Buffer.concat(chunks).toString("utf8");
    if (req.method === "POST" && req.url.split("?")[0] === "/v1/responses") {
      answerResponses(req, res, raw).catch((error) => {
        log({ event: "handler error", message: String(error) });
        res.destroy();
      });
      return;
    }
    if (req.method === "GET" && req.url === "/__mock/log") {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.end(events.map((line) => line + "\n").join(""));
      return;
    }
    log({ method: req.method, path: req.url, headers: headerSummary(req.headers), status: 404 });
    sendJson(res, 404, { error: { message: `mock: no route ${req.method} ${req.url}` } });
  });
}

const args = process.argv.slice(2);
const port = Number(args.find((arg) => !arg.startsWith("--")) ?? 0);
const server = http.createServer(onRequest);

// A hung request must not keep the process alive, nor a long stream time out on Node's side.
server.requestTimeout = 0;
server.headersTimeout = 0;
server.keepAliveTimeout = 60_000;

server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
if (args.includes("--exit-on-stdin-eof")) {
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
}
