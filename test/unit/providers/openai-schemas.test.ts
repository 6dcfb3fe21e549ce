import { describe, expect, it } from 'vitest';
import {
  chatCompletionRequestSchema,
  describeZodIssue,
  parseChatCompletionRequest,
  parseEmbeddingsRequest,
} from '../../../supabase/functions/_shared/openai/schemas.ts';

const valid = {
  model: 'gpt-4o-mini',
  messages: [
    { role: 'system', content: 'be brief' },
    { role: 'developer', content: [{ type: 'text', text: 'rules' }] },
    {
      role: 'user',
      content: [
        { type: 'text', text: 'what is this?' },
        { type: 'image_url', image_url: { url: 'https://example.com/cat.png', detail: 'low' } },
      ],
    },
    {
      role: 'assistant',
      content: null,
      tool_calls: [{
        id: 'call_1',
        type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
      }],
    },
    { role: 'tool', tool_call_id: 'call_1', content: '{"temp":21}' },
  ],
  tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
  tool_choice: { type: 'function', function: { name: 'get_weather' } },
  response_format: { type: 'json_schema', json_schema: { name: 'out', schema: { type: 'object' } } },
  n: 2,
  temperature: 0.5,
  top_p: 1,
  max_completion_tokens: 100,
  stop: ['\n\n'],
  stream: true,
  stream_options: { include_usage: true },
  user: 'u-1',
  seed: 7,
  reasoning_effort: 'low', // unknown extras pass through
};

describe('chatCompletionRequestSchema', () => {
  it('accepts a full request and keeps unknown fields', () => {
    const result = parseChatCompletionRequest(valid);
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.value.reasoning_effort).toBe('low');
      expect(result.value.messages).toHaveLength(5);
    }
  });

  it.each([
    [{ ...valid, messages: [{ role: 'robot', content: 'x' }] }, 'messages.0.role', /Invalid discriminator value/],
    [{ ...valid, model: 42 }, 'model', /expected string/],
    [{ ...valid, messages: [] }, 'messages', /expected array to have >=1 items/],
    [{ ...valid, temperature: 3 }, 'temperature', /<=2/],
    [{ ...valid, n: 0 }, 'n', /expected number to be >0/],
    [
      { ...valid, messages: [{ role: 'user', content: 5 }] },
      'messages.0.content',
      /expected a string or an array of content parts/,
    ],
    [{ ...valid, messages: [{ role: 'tool', content: 'x' }] }, 'messages.0.tool_call_id', /expected string/],
    [{ ...valid, tool_choice: 'sometimes' }, 'tool_choice', /expected 'none', 'auto', 'required'/],
    [{ ...valid, response_format: { type: 'yaml' } }, 'response_format.type', /Invalid discriminator value/],
    [
      { ...valid, tools: [{ type: 'function', function: { name: 'bad name!' } }] },
      'tools.0.function.name',
      /1-64 letters/,
    ],
    [{ ...valid, max_tokens: 1.5 }, 'max_tokens', /expected int/],
  ])('rejects %#: the error names %s', (body, param, message) => {
    const result = parseChatCompletionRequest(body);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.param).toBe(param);
      expect(result.message.startsWith(`${param}: `)).toBe(true);
      expect(result.message).toMatch(message);
    }
  });

  it('describes a whole-body issue without a path', () => {
    const result = chatCompletionRequestSchema.safeParse('not an object');
    expect(result.success).toBe(false);
    if (!result.success) {
      expect(describeZodIssue(result.error.issues[0]!)).toBe('Invalid input: expected object, received string');
    }
  });
});

describe('embeddingsRequestSchema', () => {
  it.each([['one'], [['a', 'b']], [[1, 2, 3]], [[[1, 2], [3]]]])('accepts input %j', (input) => {
    expect(parseEmbeddingsRequest({ model: 'e', input }).ok).toBe(true);
  });

  it('rejects a wrong input type and a bad encoding_format, naming the field', () => {
    const badInput = parseEmbeddingsRequest({ model: 'e', input: { text: 'x' } });
    expect(badInput).toEqual({
      ok: false,
      param: 'input',
      message: 'input: expected a string, an array of strings, or token arrays',
    });
    const badFormat = parseEmbeddingsRequest({ model: 'e', input: 'x', encoding_format: 'hex' });
    expect(badFormat.ok).toBe(false);
    if (!badFormat.ok) expect(badFormat.param).toBe('encoding_format');
  });
});
