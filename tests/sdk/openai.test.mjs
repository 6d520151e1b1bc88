// Client compatibility: the official `openai` npm package against real gateways.
//
// Started by tests/integration/test_sdk.cpp, which runs two gateways and passes their addresses:
//   GATEWAY_URL      normal fake child
//   HOLD_URL         FAKE_CODEX_MODE=long, PROXY_SSE_MAX_CONCURRENCY=1, short keepalives
//   GATEWAY_API_KEY  the bearer key of both
// Both gateways run with PROXY_TEST_ENDPOINTS=true.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI from 'openai';

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these tests through tests/integration/test_sdk.cpp`);
  }
  return value;
}

const gatewayUrl = requiredEnv('GATEWAY_URL');
const holdUrl = requiredEnv('HOLD_URL');
const apiKey = requiredEnv('GATEWAY_API_KEY');
const expectedText = 'Hello from fake-codex.';
const messages = [{ role: 'user', content: 'hi' }];
const limits = { timeout: 30_000 };

// No retries anywhere: the SDK retries 429 and 5xx by default, which would hide what the
// gateway answered and turn a fast failure into a slow one.
function client(baseUrl, key = apiKey) {
  return new OpenAI({ apiKey: key, baseURL: `${baseUrl}/v1`, maxRetries: 0, timeout: 20_000 });
}

const gateway = client(gatewayUrl);

async function rejectsWith(promise, errorClass, status, code) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof errorClass, `expected ${errorClass.name}, got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, status);
    assert.equal(err.code, code);
    return true;
  });
}

test('non-stream chat completion is parsed with text, usage and request id', limits, async () => {
  const completion = await gateway.chat.completions.create({ model: 'codex-5', messages });

  assert.equal(completion.object, 'chat.completion');
  assert.match(completion.id, /^chatcmpl-/);
  assert.equal(completion.model, 'codex-5');
  assert.equal(completion.choices.length, 1);
  assert.equal(completion.choices[0].message.role, 'assistant');
  assert.equal(completion.choices[0].message.content, expectedText);
  assert.equal(completion.choices[0].finish_reason, 'stop');
  assert.deepEqual(
    { ...completion.usage },
    { prompt_tokens: 8, completion_tokens: 6, total_tokens: 14 },
  );
  assert.ok(completion._request_id, 'x-request-id reaches the SDK');
});

test('streamed chat completion yields the text and a final usage chunk', limits, async () => {
  const stream = await gateway.chat.completions.create({
    model: 'codex-5',
    messages,
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
  }

  assert.ok(chunks.length >= 3, `only ${chunks.length} chunks`);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(text, expectedText);
  const reasons = chunks.map((c) => c.choices[0]?.finish_reason).filter((r) => r != null);
  assert.deepEqual(reasons, ['stop']);
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.prompt_tokens, 8);
  assert.equal(last.usage.completion_tokens, 6);
  assert.equal(last.usage.total_tokens, 14);
  assert.ok(chunks.slice(0, -1).every((c) => c.usage == null), 'usage only on the last chunk');
});

test('legacy completion, non-stream', limits, async () => {
  const completion = await gateway.completions.create({ model: 'codex-5', prompt: 'hi' });

  assert.equal(completion.object, 'text_completion');
  assert.match(completion.id, /^cmpl-/);
  assert.equal(completion.model, 'codex-5');
  assert.equal(completion.choices[0].text, expectedText);
  assert.equal(completion.choices[0].finish_reason, 'stop');
  assert.equal(completion.usage.total_tokens, 14);
});

test('legacy completion, stream', limits, async () => {
  const stream = await gateway.completions.create({ model: 'codex-5', prompt: 'hi', stream: true });
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
  }

  assert.ok(chunks.length >= 1);
  assert.ok(chunks.every((c) => c.object === 'text_completion.chunk' && c.id === chunks[0].id));
  assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), expectedText);
});

test('models can be listed and retrieved', limits, async () => {
  const ids = [];
  for await (const model of gateway.models.list()) {
    assert.equal(model.object, 'model');
    assert.equal(model.owned_by, 'codex');
    ids.push(model.id);
  }
  assert.deepEqual(ids, ['codex-5', 'codex-5-low', 'codex-5-medium', 'codex-5-high', 'codex-5-minimal']);

  const model = await gateway.models.retrieve('codex-5');
  assert.equal(model.id, 'codex-5');
  assert.equal(model.object, 'model');
  await rejectsWith(gateway.models.retrieve('gpt-9'), OpenAI.NotFoundError, 404, 'model_not_found');
});

test('a wrong key is an AuthenticationError', limits, async () => {
  const stranger = client(gatewayUrl, 'wrong-key');

  await rejectsWith(
    stranger.chat.completions.create({ model: 'codex-5', messages }),
    OpenAI.AuthenticationError,
    401,
    'invalid_api_key',
  );
  await rejectsWith(
    stranger.chat.completions.create({ model: 'codex-5', messages, stream: true }),
    OpenAI.AuthenticationError,
    401,
    'invalid_api_key',
  );
});

test('an invalid body is a BadRequestError naming the parameter', limits, async () => {
  await assert.rejects(
    gateway.chat.completions.create({ model: 'codex-5', messages: [] }),
    (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 400);
      assert.equal(err.type, 'invalid_request_error');
      assert.equal(err.param, 'messages');
      return true;
    },
  );
  await rejectsWith(
    gateway.completions.create({ model: 'codex-5', prompt: '' }),
    OpenAI.BadRequestError,
    400,
    'invalid_request_error',
  );
});

test('an unknown model is a NotFoundError', limits, async () => {
  await assert.rejects(
    gateway.chat.completions.create({ model: 'gpt-9', messages }),
    (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 404);
      assert.equal(err.code, 'model_not_found');
      assert.equal(err.param, 'model');
      assert.match(err.message, /The model gpt-9 does not exist/);
      return true;
    },
  );
});

test('a stream over the concurrency cap is a RateLimitError', limits, async () => {
  const hold = client(holdUrl);
  const request = { model: 'codex-5', messages, stream: true };

  const first = await hold.chat.completions.create(request);
  const chunks = first[Symbol.asyncIterator]();
  const head = await chunks.next();
  assert.equal(head.done, false);
  assert.equal(head.value.choices[0].delta.role, 'assistant');
  // A few ticks (100 ms apart) let the 100 ms keepalive comments reach the SDK's parser too.
  let text = '';
  while (!text.includes('tick-2 ')) {
    const next = await chunks.next();
    assert.equal(next.done, false, 'the held stream ended early');
    text += next.value.choices[0]?.delta?.content ?? '';
  }

  await assert.rejects(hold.chat.completions.create(request), (err) => {
    assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, 429);
    assert.equal(err.type, 'rate_limit_error');
    assert.equal(err.code, 'concurrency_exceeded');
    return true;
  });

  const release = await fetch(`${holdUrl}/__test/conc/release`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${apiKey}` },
  });
  assert.equal(release.status, 200);
  const reasons = [];
  for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
    text += next.value.choices[0]?.delta?.content ?? '';
    if (next.value.choices[0]?.finish_reason) {
      reasons.push(next.value.choices[0].finish_reason);
    }
  }
  assert.match(text, /^tick-0 /);
  assert.deepEqual(reasons, ['stop']);
});
