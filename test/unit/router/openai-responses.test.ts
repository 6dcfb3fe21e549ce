import { describe, expect, it } from 'vitest';
import {
  parseResponsesRequest,
  type ResponseItem,
  type ResponsesRequest,
} from '../../../supabase/functions/_shared/openai/responses-schemas.ts';
import type { ChatCompletionChunk, Usage } from '../../../supabase/functions/_shared/openai/types.ts';
import { RequestMappingError, UpstreamFailureError } from '../../../supabase/functions/_shared/providers/errors.ts';
import type { StreamTranslator } from '../../../supabase/functions/_shared/providers/types.ts';
import type { SseEvent } from '../../../supabase/functions/_shared/sse.ts';
import {
  ForwardedResponsesStream,
  TranslatedResponsesStream,
} from '../../../supabase/functions/llm-router/dialects/openai-responses-stream.ts';
import {
  echoedFields,
  inputItems,
  toChatRequest,
  toResponseObject,
} from '../../../supabase/functions/llm-router/dialects/openai-responses-translate.ts';

// The Responses dialect's pure parts: validation, the mapping to the chat shape
// other providers take, the Response object back, and both kinds of stream.
const request = (extra: Partial<ResponsesRequest> = {}): ResponsesRequest => ({ model: 'm', input: 'hi', ...extra });
const options = { stream: false, kind: 'openai_compatible' as const };

function mappingError(build: () => unknown): RequestMappingError {
  try {
    build();
  } catch (error) {
    if (error instanceof RequestMappingError) return error;
    throw error;
  }
  throw new Error('no mapping error');
}

function parsedItems(input: unknown[]): ResponseItem[] {
  const parsed = parseResponsesRequest({ model: 'm', input });
  if (!parsed.ok) throw new Error(parsed.message);
  return inputItems(parsed.value.input);
}

describe('parseResponsesRequest', () => {
  it('names an unknown item type and a missing field by their paths', () => {
    expect(parseResponsesRequest({ model: 'm', input: [{ type: 'hologram' }] }))
      .toMatchObject({ ok: false, param: 'input.0.type' });
    expect(parseResponsesRequest({ model: 'm', input: [{ type: 'function_call', name: 'f', arguments: '{}' }] }))
      .toMatchObject({ ok: false, param: 'input.0.call_id' });
    expect(parseResponsesRequest({ model: 'm', input: [{ role: 'user', content: [{ type: 'input_video' }] }] }))
      .toMatchObject({ ok: false, param: 'input.0.content.0.type' });
    expect(parseResponsesRequest({ model: 'm', input: 'x', tools: [{ type: 'function', name: 'no spaces' }] }))
      .toMatchObject({ ok: false, param: 'tools.0.name' });
  });

  it('takes a message without type as a message item, and keeps unknown fields', () => {
    const parsed = parseResponsesRequest({ model: 'm', input: [{ role: 'user', content: 'x' }], future: 1 });
    expect(parsed.ok && parsed.value.input).toEqual([{ type: 'message', role: 'user', content: 'x' }]);
    expect(parsed.ok && parsed.value.future).toBe(1);
  });
});

describe('toChatRequest', () => {
  it('maps instructions, messages, calls made in one turn and their outputs, dropping reasoning', () => {
    const items = parsedItems([
      { role: 'developer', content: 'Use tools.' },
      {
        role: 'user',
        content: [{ type: 'input_text', text: 'weather in ' }, { type: 'input_text', text: 'two cities' }],
      },
      { type: 'reasoning', id: 'rs_1', summary: [], encrypted_content: 'opaque' },
      { type: 'function_call', call_id: 'c1', name: 'w', arguments: '{"city":"A"}' },
      { type: 'function_call', call_id: 'c2', name: 'w', arguments: '{"city":"B"}' },
      { type: 'function_call_output', call_id: 'c1', output: 'sunny' },
      { type: 'function_call_output', call_id: 'c2', output: [{ type: 'input_text', text: 'rain' }] },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'A sunny, B rain.' }] },
    ]);
    const chat = toChatRequest(request({ instructions: 'Be brief.', max_output_tokens: 20 }), items, 0, options);
    expect(chat).toEqual({
      model: 'm',
      stream: false,
      max_tokens: 20,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'system', content: 'Use tools.' },
        { role: 'user', content: 'weather in two cities' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'c1', type: 'function', function: { name: 'w', arguments: '{"city":"A"}' } },
            { id: 'c2', type: 'function', function: { name: 'w', arguments: '{"city":"B"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'c1', content: 'sunny' },
        { role: 'tool', tool_call_id: 'c2', content: 'rain' },
        { role: 'assistant', content: 'A sunny, B rain.' },
      ],
    });
  });

  it('maps tools, tool_choice, text.format and reasoning effort (to OpenAI-compatible servers only)', () => {
    const wire = request({
      tools: [{ type: 'function', name: 'w', parameters: { type: 'object' }, strict: true }],
      tool_choice: { type: 'function', name: 'w' },
      text: { format: { type: 'json_schema', name: 's', schema: { type: 'object' } } },
      reasoning: { effort: 'high' },
    });
    const chat = toChatRequest(wire, inputItems(wire.input), 0, options);
    expect(chat).toMatchObject({
      tools: [{ type: 'function', function: { name: 'w', parameters: { type: 'object' }, strict: true } }],
      tool_choice: { type: 'function', function: { name: 'w' } },
      response_format: { type: 'json_schema', json_schema: { name: 's', schema: { type: 'object' } } },
      reasoning_effort: 'high',
    });
    expect(toChatRequest(wire, inputItems(wire.input), 0, { ...options, kind: 'anthropic' }).reasoning_effort)
      .toBeUndefined();
  });

  it('refuses built-in tools, built-in tool_choice, items and parts chat cannot express, naming them', () => {
    const tool = request({ tools: [{ type: 'function', name: 'w' }, { type: 'file_search' }] });
    expect(mappingError(() => toChatRequest(tool, [], 0, options))).toMatchObject({ param: 'tools.1' });
    const choice = request({ tool_choice: { type: 'web_search_preview' } });
    expect(mappingError(() => toChatRequest(choice, [], 0, options))).toMatchObject({ param: 'tool_choice' });
    const items = parsedItems([{ role: 'user', content: 'x' }, { type: 'item_reference', id: 'msg_1' }]);
    expect(mappingError(() => toChatRequest(request(), items, 0, options))).toMatchObject({ param: 'input.1' });
    // Stored turns come first: an item among them is named by previous_response_id.
    expect(mappingError(() => toChatRequest(request(), items, 2, options)))
      .toMatchObject({ param: 'previous_response_id' });
    const file = parsedItems([{ role: 'user', content: [{ type: 'input_file', file_id: 'f' }] }]);
    expect(mappingError(() => toChatRequest(request(), file, 0, options))).toMatchObject({
      param: 'input.0.content.0',
    });
  });
});

describe('toResponseObject', () => {
  const head = { ids: { response: 'resp_r1', items: 'r1' }, createdAt: 5, model: 'alias', promptTokens: 9 };
  it('answers text and tool calls as output items, a cut answer as incomplete', () => {
    const response = toResponseObject({
      id: 'x',
      object: 'chat.completion',
      created: 1,
      model: 'up',
      choices: [{
        index: 0,
        message: {
          role: 'assistant',
          content: 'Looking.',
          tool_calls: [{ id: 'c1', type: 'function', function: { name: 'w', arguments: '{}' } }],
        },
        finish_reason: 'length',
        logprobs: null,
      }],
      usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 },
    }, { ...head, echoed: echoedFields(request(), null) });
    expect(response).toMatchObject({
      id: 'resp_r1',
      object: 'response',
      created_at: 5,
      model: 'alias',
      status: 'incomplete',
      incomplete_details: { reason: 'max_output_tokens' },
      output: [
        { type: 'message', id: 'msg_r1', content: [{ type: 'output_text', text: 'Looking.' }] },
        { type: 'function_call', id: 'fc_r1_0', call_id: 'c1', name: 'w', arguments: '{}' },
      ],
      usage: { input_tokens: 7, output_tokens: 3, total_tokens: 10 },
      store: true,
      previous_response_id: null,
    });
  });
});

/** A translator that takes chat chunks as they are (the OpenAI-format shape). */
function passThroughTranslator(): StreamTranslator {
  let usage: Usage | undefined;
  let done = false;
  return {
    push(event: SseEvent): ChatCompletionChunk[] {
      if (event.data === '[DONE]') {
        done = true;
        return [];
      }
      const chunk = JSON.parse(event.data) as ChatCompletionChunk;
      if (chunk.usage) usage = chunk.usage;
      return [chunk];
    },
    finish: () => [],
    usage: () => usage,
    done: () => done,
  };
}

const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
  `data: ${
    JSON.stringify({
      id: 'c',
      object: 'chat.completion.chunk',
      created: 1,
      model: 'm',
      choices: [{ index: 0, delta, finish_reason: finish }],
    })
  }\n\n`;
const body = (text: string) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(text));
      controller.close();
    },
  });

/** Everything a source sends, as the relay does: every chunk, then its end. */
async function drain(source: { next(): Promise<Uint8Array | undefined>; end(): Uint8Array }): Promise<string> {
  let text = '';
  const decoder = new TextDecoder();
  for (let bytes = await source.next(); bytes !== undefined; bytes = await source.next()) text += decoder.decode(bytes);
  return text + decoder.decode(source.end());
}

const eventsOf = (text: string) =>
  text.split('\n\n').filter((block) => block.startsWith('event: ')).map((block) =>
    JSON.parse(block.split('\n')[1].slice(6)) as { type: string; sequence_number: number } & Record<string, unknown>
  );

describe('TranslatedResponsesStream', () => {
  const head = {
    ids: { response: 'resp_r1', items: 'r1' },
    createdAt: 5,
    model: 'alias',
    promptTokens: 9,
    echoed: echoedFields(request(), null),
  };

  it('turns text then a tool call into the semantic events, numbered from 0, ending with usage', async () => {
    const upstream = chunk({ role: 'assistant', content: 'Hi' }) + chunk({ content: ' there' }) +
      chunk({ tool_calls: [{ index: 0, id: 'c1', type: 'function', function: { name: 'w', arguments: '' } }] }) +
      chunk({ tool_calls: [{ index: 0, function: { arguments: '{"a":' } }] }) +
      chunk({ tool_calls: [{ index: 0, function: { arguments: '1}' } }] }) + chunk({}, 'tool_calls') +
      `data: ${
        JSON.stringify({
          id: 'c',
          object: 'chat.completion.chunk',
          created: 1,
          model: 'm',
          choices: [],
          usage: { prompt_tokens: 8, completion_tokens: 6, total_tokens: 14 },
        })
      }\n\n` +
      'data: [DONE]\n\n';
    const source = new TranslatedResponsesStream(body(upstream), passThroughTranslator(), 'p', head);
    const events = eventsOf(await drain(source));
    expect(events.map((event) => event.sequence_number)).toEqual(events.map((_, i) => i));
    expect(events.map((event) => event.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(events[12]).toMatchObject({ item_id: 'fc_r1_0', output_index: 1, arguments: '{"a":1}', name: 'w' });
    const completed = events.at(-1)!.response as Record<string, unknown>;
    expect(completed).toMatchObject({
      id: 'resp_r1',
      status: 'completed',
      output: [
        { type: 'message', content: [{ type: 'output_text', text: 'Hi there' }] },
        { type: 'function_call', call_id: 'c1', name: 'w', arguments: '{"a":1}', status: 'completed' },
      ],
      usage: { input_tokens: 8, output_tokens: 6, total_tokens: 14 },
    });
    expect(source.usage()).toEqual({ promptTokens: 8, completionTokens: 6 });
    expect(source.answer()?.body).toEqual(completed);
  });

  it('fails a stream cut before its end, charging the text already sent', async () => {
    const source = new TranslatedResponsesStream(
      body(chunk({ content: 'one two three' })),
      passThroughTranslator(),
      'p',
      head,
    );
    expect(await source.next()).toBeDefined();
    await expect(source.next()).rejects.toBeInstanceOf(UpstreamFailureError);
    expect(source.usage().completionTokens).toBeGreaterThan(0);
    expect(source.answer()).toBeUndefined();
  });
});

describe('ForwardedResponsesStream', () => {
  const sse = (type: string, data: Record<string, unknown>) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const completed = {
    id: 'resp_up',
    object: 'response',
    output: [],
    usage: { input_tokens: 4, output_tokens: 2, total_tokens: 6 },
  };

  it('forwards the bytes as they are and reads usage from response.completed', async () => {
    const text = sse('response.created', { sequence_number: 0, response: { ...completed, usage: null } }) +
      sse('response.output_text.delta', { sequence_number: 1, delta: 'hi' }) +
      sse('response.completed', { sequence_number: 2, response: completed });
    const source = new ForwardedResponsesStream(body(text), 'p');
    expect(await drain(source)).toBe(text);
    expect(source.usage()).toEqual({ promptTokens: 4, completionTokens: 2 });
    expect(source.answer()?.body).toEqual(completed);
  });

  it('fails a cut stream (counting its deltas) and an error event', async () => {
    const cut = new ForwardedResponsesStream(
      body(sse('response.output_text.delta', { sequence_number: 1, delta: 'one two' })),
      'p',
    );
    await expect(drain(cut)).rejects.toBeInstanceOf(UpstreamFailureError);
    expect(cut.usage().completionTokens).toBeGreaterThan(0);
    const failed = new ForwardedResponsesStream(
      body(sse('error', { sequence_number: 0, code: 'server_error', message: 'boom' })),
      'p',
    );
    await expect(drain(failed)).rejects.toBeInstanceOf(UpstreamFailureError);
  });
});
