// Structured outputs and tool calling through the official OpenAI Node SDK (issue 17): response_format
// json_schema answers must parse and validate (Ajv) for 100 sampled completions per schema, streamed and not;
// tool_choice "required" must always give parseable calls with valid arguments; "auto" takes a tool result back.
import assert from 'node:assert/strict';
import Ajv from 'ajv';

const ajv = new Ajv({ strict: false, allErrors: true });

export const SCHEMAS = {
  person: {
    type: 'object',
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 8 },
      age: { type: 'integer', minimum: 0, maximum: 120 },
      email: { type: 'string', maxLength: 10 },
      address: {
        type: 'object',
        properties: { street: { type: 'string', maxLength: 8 }, zip: { type: 'string', pattern: '^[0-9]{5}$' } },
        required: ['street', 'zip'],
        additionalProperties: false,
      },
    },
    required: ['name', 'age', 'address'],
    additionalProperties: false,
  },
  order: {
    type: 'object',
    properties: {
      items: {
        type: 'array', minItems: 1, maxItems: 3,
        items: {
          type: 'object',
          properties: {
            sku: { enum: ['A1', 'B2', 'C3'] },
            qty: { type: 'integer', minimum: 1, maximum: 5 },
            price: { type: 'number', minimum: 0, exclusiveMaximum: 100 },
          },
          required: ['sku', 'qty', 'price'],
          additionalProperties: false,
        },
      },
      status: { enum: ['open', 'paid', 'shipped'] },
      notes: { type: 'string', maxLength: 6 },
    },
    required: ['items', 'status'],
    additionalProperties: false,
  },
  matrix: {
    type: 'object',
    properties: {
      rows: {
        type: 'array', minItems: 1, maxItems: 3,
        items: { type: 'array', minItems: 2, maxItems: 2, items: { type: 'number', exclusiveMinimum: -5, maximum: 5 } },
      },
      square: { type: 'boolean' },
    },
    required: ['rows', 'square'],
    additionalProperties: false,
  },
  mixed: {
    type: 'object',
    properties: {
      value: { anyOf: [{ type: 'string', maxLength: 5 }, { type: 'integer', minimum: -50, maximum: 50 }, { type: 'null' }] },
      tags: { type: 'array', maxItems: 2, items: { type: 'string', minLength: 1, maxLength: 4 } },
      ok: { type: 'boolean' },
    },
    required: ['value', 'tags', 'ok'],
    additionalProperties: false,
  },
};

const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather', description: 'Weather of a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', minLength: 1, maxLength: 8 }, unit: { enum: ['C', 'F'] } },
      required: ['city', 'unit'], additionalProperties: false,
    },
  },
};
const TIME = {
  type: 'function',
  function: {
    name: 'get_time',
    parameters: {
      type: 'object', properties: { zone: { type: 'integer', minimum: -12, maximum: 12 } }, required: ['zone'],
      additionalProperties: false,
    },
  },
};
const TOOLS = [WEATHER, TIME];
const argumentsValid = {
  get_weather: ajv.compile(WEATHER.function.parameters),
  get_time: ajv.compile(TIME.function.parameters),
};

function checkDocument(validate, text, what) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    assert.fail(`${what}: not JSON: ${text}`);
  }
  assert.ok(validate(doc), `${what}: ${text}\n${JSON.stringify(validate.errors)}`);
}

function checkCall(call, what) {
  assert.equal(call.type, 'function');
  assert.ok(call.id, what);
  const validate = argumentsValid[call.function.name];
  assert.ok(validate, `${what}: unknown function ${call.function.name}`);
  checkDocument(validate, call.function.arguments, `${what} ${call.function.name}`);
}

export function register(check, client, model) {
  const messages = [{ role: 'user', content: 'Once upon a time there was a cat' }];

  for (const [name, schema] of Object.entries(SCHEMAS)) {
    check(`response_format json_schema '${name}': 100 sampled completions, streamed and not, all valid`, async () => {
      const validate = ajv.compile(schema);
      const response_format = { type: 'json_schema', json_schema: { name, schema, strict: true } };
      const whole = await client.chat.completions.create({
        model, messages, response_format, n: 100, max_tokens: 400, temperature: 1,
      });
      assert.equal(whole.choices.length, 100);
      for (const c of whole.choices) {
        assert.equal(c.finish_reason, 'stop', c.message.content);
        checkDocument(validate, c.message.content, `${name} #${c.index}`);
      }
      const stream = await client.chat.completions.create({
        model, messages, response_format, n: 100, max_tokens: 400, temperature: 1, stream: true,
      });
      const texts = new Array(100).fill('');
      const finishes = new Array(100).fill(null);
      for await (const chunk of stream) {
        for (const c of chunk.choices) {
          texts[c.index] += c.delta?.content ?? '';
          finishes[c.index] = c.finish_reason ?? finishes[c.index];
        }
      }
      texts.forEach((t, i) => {
        assert.equal(finishes[i], 'stop', t);
        checkDocument(validate, t, `${name} streamed #${i}`);
      });
    });
  }

  check('completions + json_object and structured_outputs choice', async () => {
    const obj = await client.chat.completions.create({
      model, messages, response_format: { type: 'json_object' }, max_tokens: 400, temperature: 0.7, seed: 4,
    });
    if (obj.choices[0].finish_reason === 'stop') {
      assert.equal(typeof JSON.parse(obj.choices[0].message.content), 'object');
    }
    const completion = await client.completions.create({
      model, prompt: 'Once upon a time', max_tokens: 400, n: 10, temperature: 1,
      response_format: { type: 'json_schema', json_schema: { name: 'mixed', schema: SCHEMAS.mixed } },
    });
    const validate = ajv.compile(SCHEMAS.mixed);
    completion.choices.forEach((c) => checkDocument(validate, c.text, `completion #${c.index}`));
    const choice = await client.chat.completions.create({
      model, messages, max_tokens: 10, n: 8, structured_outputs: { choice: ['left', 'right'] },
    });
    choice.choices.forEach((c) => assert.ok(['left', 'right'].includes(c.message.content), c.message.content));
  });

  check('response_format: an unsupported keyword is a 400 naming it', async () => {
    await assert.rejects(client.chat.completions.create({
      model, messages, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'integer', multipleOf: 3 } } },
    }), (e) => e.status === 400 && /multipleOf/.test(e.message) && e.param === 'response_format');
  });

  check('tools: tool_choice "required" always yields parseable calls with valid arguments, streamed and not', async () => {
    // stories260K has 512 positions: one call each for 40 samples, parallel calls for 20 seeded ones.
    const single = await client.chat.completions.create({
      model, messages, tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, n: 40, max_tokens: 400,
      temperature: 1,
    });
    const parallel = await client.chat.completions.create({
      model, messages, tools: TOOLS, tool_choice: 'required', n: 20, max_tokens: 480, temperature: 1, seed: 7,
    });
    for (const c of single.choices) {
      assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c.message));
      assert.equal(c.message.tool_calls.length, 1);
      checkCall(c.message.tool_calls[0], `required #${c.index}`);
    }
    // Parallel calls may run into the 512-token context: then the complete ones are returned (finish "length").
    assert.ok(parallel.choices.some((c) => c.message.tool_calls.length > 1), 'some parallel calls');
    for (const c of parallel.choices) {
      assert.ok(['tool_calls', 'length'].includes(c.finish_reason), JSON.stringify(c));
      assert.ok(c.message.tool_calls.length >= 1, JSON.stringify(c.message));
      c.message.tool_calls.forEach((call) => checkCall(call, `parallel #${c.index}`));
    }
    // The SDK's stream helper accumulates delta.tool_calls into the final message.
    for (let i = 0; i < 10; i++) {
      const runner = client.chat.completions.stream({
        model, messages, tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 400,
      });
      const final = await runner.finalChatCompletion();
      const calls = final.choices[0].message.tool_calls;
      assert.equal(calls.length, 1, JSON.stringify(final.choices[0].message));
      checkCall(calls[0], `streamed required ${i}`);
    }
  });

  check('tools: a named function, then "auto" round-trips the tool result', async () => {
    const named = await client.chat.completions.create({
      model, messages, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_weather' } },
      max_tokens: 100,
    });
    const call = named.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, 'get_weather');
    checkCall(call, 'named');
    const answer = await client.chat.completions.create({
      model, tools: TOOLS, tool_choice: 'auto', max_tokens: 12, temperature: 0,
      messages: [...messages, { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: 'Sunny, 21 C' }],
    });
    const message = answer.choices[0].message;
    assert.equal(message.role, 'assistant');
    assert.ok((message.content ?? '').length > 0 || (message.tool_calls ?? []).length > 0, JSON.stringify(message));
  });
}
