// POST /v1/responses in OpenAI's Responses format, streamed or not: the pipeline's Responses dialect.
// To an OpenAI or Azure OpenAI upstream the request passes through to its
// /v1/responses (only `model` changes, and a previous_response_id is expanded
// here: the upstream never saw the router's stored turns); to any other
// provider it goes through that provider's chat adapter
// (openai-responses-translate.ts). Stored turns: _shared/responses.
import {
  parseResponsesRequest,
  type ResponseItem,
  type ResponsesRequest,
} from '../../_shared/openai/responses-schemas.ts';
import { azureHeaders } from '../../_shared/providers/azure-openai/api.ts';
import { joinUrl, jsonPost } from '../../_shared/providers/http.ts';
import { openAIHeaders, openAIUrl } from '../../_shared/providers/openai/api.ts';
import { getProviderAdapter } from '../../_shared/providers/registry.ts';
import type { UpstreamRequest } from '../../_shared/providers/types.ts';
import { readUpstreamBody } from '../../_shared/providers/upstream-body.ts';
import { storedConversation, storeResponse } from '../../_shared/responses/stored-responses.ts';
import type { ModelCapability } from '../../_shared/router/catalog.ts';
import { isInvalidJson } from '../../_shared/router/quality-signals.ts';
import { countTextTokens } from '../../_shared/router/tokens.ts';
import type { Attempt, Dialect } from '../pipeline.ts';
import type { TokenUsage } from '../stream.ts';
import { chatCallContext, mapped, validated } from './common.ts';
import {
  ForwardedResponsesStream,
  responsesUpstreamSchema,
  TranslatedResponsesStream,
} from './openai-responses-stream.ts';
import {
  echoedFields,
  estimateResponsesPromptTokens,
  inputItems,
  type ResponseIds,
  toChatRequest,
  toResponseObject,
} from './openai-responses-translate.ts';

/** The validated request, the client's JSON as it came (what a pass-through sends), and its conversation. */
export interface ResponsesWire {
  request: ResponsesRequest;
  raw: Record<string, unknown>;
  /** This turn's input as items. */
  input: ResponseItem[];
  /** The stored conversation previous_response_id continues, oldest first (empty without one). */
  history: ResponseItem[];
}

export interface ResponsesAnswer {
  body: Record<string, unknown>;
  usage: TokenUsage;
}

function requiredCapabilities(request: ResponsesRequest, items: ResponseItem[]): ModelCapability[] {
  const requires: ModelCapability[] = ['chat'];
  if (request.stream) requires.push('stream');
  if (request.tools && request.tools.length > 0) requires.push('tools');
  const images = items.some((item) =>
    item.type === 'message' && Array.isArray(item.content) && item.content.some((part) => part.type === 'input_image')
  );
  if (images) requires.push('vision');
  const format = request.text?.format?.type;
  if (format === 'json_object' || format === 'json_schema') requires.push('json');
  return requires;
}

/** Upstreams that serve /v1/responses themselves. */
const passesThrough = (attempt: Attempt<ResponsesWire>) =>
  attempt.candidate.provider.kind === 'openai' || attempt.candidate.provider.kind === 'azure_openai';
const adapterOf = (attempt: Attempt<ResponsesWire>) => getProviderAdapter(attempt.candidate.provider.kind);
const idsOf = (attempt: Attempt<ResponsesWire>): ResponseIds => ({
  response: `resp_${attempt.requestId}`,
  items: attempt.requestId,
});
const conversationOf = (wire: ResponsesWire) => [...wire.history, ...wire.input];

/**
 * The client's body with the upstream model; a stored conversation is sent as
 * input items (previous_response_id names the router's turn, not the upstream's).
 */
function passThroughRequest(attempt: Attempt<ResponsesWire>): UpstreamRequest {
  const { wire, stream } = attempt.request;
  const { provider, model } = attempt.candidate;
  const body: Record<string, unknown> = { ...wire.raw, model: model.upstreamModel };
  if (wire.request.previous_response_id) {
    delete body.previous_response_id;
    body.input = conversationOf(wire);
  }
  if (provider.kind === 'azure_openai') {
    // Azure's v1 API: the deployment is the body's model.
    return jsonPost(joinUrl(provider.baseUrl, 'openai/v1/responses'), azureHeaders(attempt.apiKey), body, stream);
  }
  const endpoint = { kind: provider.kind, baseUrl: provider.baseUrl };
  return jsonPost(openAIUrl(endpoint, 'responses'), openAIHeaders(attempt.apiKey), body, stream);
}

export const openAIResponses: Dialect<ResponsesWire, ResponsesAnswer> = {
  name: 'openai_responses',
  parse(body) {
    const request = validated(parseResponsesRequest(body));
    const input = inputItems(request.input);
    const wire: ResponsesWire = { request, raw: body as Record<string, unknown>, input, history: [] };
    return {
      wire,
      alias: request.model,
      requires: requiredCapabilities(request, input),
      promptTokens: estimateResponsesPromptTokens(request.instructions, input, request.tools),
      maxOutputTokens: request.max_output_tokens ?? undefined,
      stream: request.stream === true,
    };
  },
  async resolve(request, { services, tenant }) {
    const { wire } = request;
    const previous = wire.request.previous_response_id;
    if (!previous) return request;
    const history = await storedConversation(services.deps.db, tenant.tenantId, previous);
    const conversation = [...history, ...wire.input];
    return {
      ...request,
      wire: { ...wire, history },
      requires: requiredCapabilities(wire.request, conversation),
      promptTokens: estimateResponsesPromptTokens(wire.request.instructions, conversation, wire.request.tools),
    };
  },
  withMaxTokens: (wire, maxTokens) => ({
    ...wire,
    request: { ...wire.request, max_output_tokens: maxTokens },
    raw: { ...wire.raw, max_output_tokens: maxTokens },
  }),
  upstreamRequest(attempt) {
    if (passesThrough(attempt)) return passThroughRequest(attempt);
    const { wire } = attempt.request;
    const ctx = chatCallContext(attempt, true);
    const options = { stream: ctx.stream, kind: attempt.candidate.provider.kind };
    return mapped(() =>
      adapterOf(attempt).buildChatRequest(
        toChatRequest(wire.request, conversationOf(wire), wire.history.length, options),
        ctx,
      )
    );
  },
  answer(body, attempt) {
    if (passesThrough(attempt)) {
      // Read for usage only: the client gets the upstream's response as it is.
      const provider = attempt.candidate.provider.slug;
      const { usage, output } = readUpstreamBody(responsesUpstreamSchema, body, provider);
      return {
        body: body as Record<string, unknown>,
        usage: usage
          ? { promptTokens: usage.input_tokens, completionTokens: usage.output_tokens }
          : { completionTokens: countTextTokens(JSON.stringify(output)) },
      };
    }
    const chat = adapterOf(attempt).parseChatResponse(body, chatCallContext(attempt, true));
    const { wire, promptTokens, alias } = attempt.request;
    const response = toResponseObject(chat, {
      ids: idsOf(attempt),
      createdAt: attempt.created,
      model: alias,
      promptTokens,
      echoed: echoedFields(wire.request, wire.request.previous_response_id ?? null),
    });
    const usage = response.usage as { input_tokens: number; output_tokens: number };
    return {
      body: response,
      usage: { promptTokens: chat.usage?.prompt_tokens, completionTokens: usage.output_tokens },
    };
  },
  usage: (answer) => answer.usage,
  render: (c, answer) => c.json(answer.body),
  outcome(wire, answer) {
    const { output, incomplete_details: incomplete } = answer.body as {
      output?: { type?: string; content?: { type?: string; text?: string }[] }[];
      incomplete_details?: { reason?: string } | null;
    };
    const parts = (output ?? []).flatMap((item) => (item.type === 'message' ? item.content ?? [] : []));
    if (incomplete?.reason === 'content_filter' || parts.some((part) => part.type === 'refusal')) return 'refusal';
    const format = wire.request.text?.format?.type;
    // A function call is not the JSON answer text.format asks for.
    if ((format !== 'json_object' && format !== 'json_schema') || parts.length === 0) return 'ok';
    const text = parts.map((part) => part.text ?? '').join('');
    return isInvalidJson(text) ? 'invalid_json' : 'ok';
  },
  streamSource(body, attempt) {
    const provider = attempt.candidate.provider.slug;
    if (passesThrough(attempt)) return new ForwardedResponsesStream(body, provider);
    const { wire, promptTokens, alias } = attempt.request;
    const translator = adapterOf(attempt).createStreamTranslator(chatCallContext(attempt, true));
    return new TranslatedResponsesStream(body, translator, provider, {
      ids: idsOf(attempt),
      createdAt: attempt.created,
      model: alias,
      promptTokens,
      echoed: echoedFields(wire.request, wire.request.previous_response_id ?? null),
    });
  },
  async keep(answer, request, { services, tenant, requestId }) {
    const { wire } = request;
    const id = answer.body.id;
    if (wire.request.store === false || typeof id !== 'string') return;
    await storeResponse(services.deps.db, {
      tenantId: tenant.tenantId,
      id,
      previousResponseId: wire.request.previous_response_id ?? null,
      requestId,
      modelAlias: request.alias,
      input: wire.input,
      response: answer.body,
    });
  },
};
