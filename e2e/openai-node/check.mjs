// kvass serve through the official OpenAI Node SDK: chat and completions, streamed and not, usage,
// logprobs, the SDK's error classes, and a LoRA adapter picked by model name (loaded and unloaded at
// runtime with vLLM's endpoints). Run by run.sh against a started server (one adapter, story-b):
//   KVASS_URL=http://127.0.0.1:8000/v1 KVASS_API_KEY=sk-e2e node check.mjs
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { register as registerStructured } from './structured.mjs';

const baseURL = process.env.KVASS_URL ?? 'http://127.0.0.1:8000/v1';
const apiKey = process.env.KVASS_API_KEY ?? 'sk-e2e';
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

const checks = [];
const check = (name, fn) => checks.push([name, fn]);

const models = await client.models.list();
assert.equal(models.data.length, 2);
const model = models.data.find((m) => m.parent === null).id;
const messages = [{ role: 'user', content: 'Once upon a time there was a cat' }];

check('models.list', async () => {
  assert.equal(models.data[0].object, 'model');
  assert.equal(models.data[0].owned_by, 'kvass');
});

check('chat: streamed text equals non-streamed, usage last', async () => {
  const whole = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0 });
  assert.equal(whole.object, 'chat.completion');
  assert.match(whole.id, /^chatcmpl-/);
  const text = whole.choices[0].message.content;
  assert.ok(text.length > 0);
  assert.equal(whole.choices[0].message.role, 'assistant');
  assert.equal(whole.usage.completion_tokens, 24);
  assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + 24);

  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let streamed = '';
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    for (const c of chunk.choices) {
      streamed += c.delta?.content ?? '';
      finish = c.finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(streamed, text);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
});

check('chat: stream helper and logprobs', async () => {
  const runner = client.chat.completions.stream({ model, messages, max_tokens: 8, temperature: 0 });
  const final = await runner.finalChatCompletion();
  assert.ok(final.choices[0].message.content.length > 0);
  const lp = await client.chat.completions.create({
    model, messages, max_tokens: 3, temperature: 0, logprobs: true, top_logprobs: 2,
  });
  assert.equal(lp.choices[0].logprobs.content.length, 3);
  assert.equal(lp.choices[0].logprobs.content[0].top_logprobs.length, 2);
});

check('completions: streamed and not, a batch of prompts', async () => {
  const whole = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0 });
  assert.equal(whole.object, 'text_completion');
  assert.match(whole.id, /^cmpl-/);
  const stream = await client.completions.create({
    model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0, stream: true,
  });
  let streamed = '';
  for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? '';
  assert.equal(streamed, whole.choices[0].text);
  const batch = await client.completions.create({
    model, prompt: ['Once upon a time', 'The dog'], max_tokens: 4, temperature: 0, n: 2,
  });
  assert.deepEqual(batch.choices.map((c) => c.index), [0, 1, 2, 3]);
  assert.equal(batch.choices[0].text, whole.choices[0].text.slice(0, batch.choices[0].text.length));
  assert.equal(batch.usage.completion_tokens, 16);
});

check('errors: 400, 404, 401 as the SDK classes', async () => {
  await assert.rejects(client.chat.completions.create({ model, messages, temperature: -1 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError, String(e));
    assert.equal(e.status, 400);
    assert.equal(e.param, 'temperature');
    return true;
  });
  await assert.rejects(client.completions.create({ model: 'no-such-model', prompt: 'hi' }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
  const stranger = new OpenAI({ baseURL, apiKey: 'sk-wrong', maxRetries: 0 });
  await assert.rejects(stranger.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
});

check('LoRA: an adapter by its model name; load and unload at runtime', async () => {
  const card = models.data.find((m) => m.id === 'story-b');
  assert.equal(card.parent, model);
  const ask = (name) => client.completions.create({ model: name, prompt: 'Once upon a time', max_tokens: 16,
    temperature: 0 });
  const base = await ask(model);
  const lora = await ask('story-b');
  assert.equal(lora.model, 'story-b');
  assert.notEqual(lora.choices[0].text, base.choices[0].text);
  const post = (path, body) => fetch(`${baseURL}/${path}`, {
    method: 'POST', body: JSON.stringify(body),
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${apiKey}` },
  });
  const loaded = await post('load_lora_adapter', { lora_name: 'story-b2', lora_path: card.root });
  assert.equal(loaded.status, 200, await loaded.text());
  assert.equal((await ask('story-b2')).choices[0].text, lora.choices[0].text);
  const unloaded = await post('unload_lora_adapter', { lora_name: 'story-b2' });
  assert.equal(unloaded.status, 200, await unloaded.text());
  await assert.rejects(ask('story-b2'), (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
  const bad = await post('load_lora_adapter', { lora_name: 'x', lora_path: '/etc' });
  assert.equal(bad.status, 400);
  const refusal = (await bad.json()).error.message;
  assert.match(refusal, /not under an allowed directory/);
  assert.doesNotMatch(refusal, /not a directory|resolves/, 'nothing about the path outside the roots leaks');
});

registerStructured(check, client, model);

let failed = 0;
for (const [name, fn] of checks) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n     ${e.stack ?? e}`);
  }
}
console.log(`${checks.length - failed}/${checks.length} OpenAI SDK checks passed`);
process.exit(failed ? 1 : 0);
