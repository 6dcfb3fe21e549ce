import { authenticate } from '../_shared/auth/middleware.ts';
import type { AppDependencies } from '../_shared/dependencies.ts';
import { createFunctionApp } from '../_shared/function-app.ts';
import { answerErrorsAs } from '../_shared/middleware/error-format.ts';
import { anthropicMessages } from './dialects/anthropic-messages.ts';
import { openAIChat } from './dialects/openai-chat.ts';
import { openAIEmbeddings } from './dialects/openai-embeddings.ts';
import { openAIResponses } from './dialects/openai-responses.ts';
import { meteredRoute } from './pipeline.ts';
import { countTokensRoutes } from './routes/count-tokens.ts';
import { feedbackRoutes } from './routes/feedback.ts';
import { modelRoutes } from './routes/models.ts';
import { storedResponseRoutes } from './routes/responses.ts';
import { createRouterServices, type LlmRouterOptions } from './services.ts';

/**
 * The OpenAI-compatible LLM endpoint: point the `openai` SDK (chat
 * completions, Responses, Codex CLI) at `<FUNCTIONS_URL>/llm-router/v1`, or an Anthropic SDK (Claude Code) at
 * `<FUNCTIONS_URL>/llm-router`. Errors use the shape of the route's dialect.
 */
export function createLlmRouterApp(deps: AppDependencies, options: LlmRouterOptions) {
  const services = createRouterServices(deps, options);
  const app = createFunctionApp('llm-router', deps, { errorFormat: 'openai' });
  // Anthropic clients (Claude Code) probe the base URL with HEAD (Hono answers it as a GET without
  // the body); Anthropic's API answers 200 without authentication.
  app.get('/', (c) => c.body(null, 200));
  // Before authentication, so a 401 on an Anthropic route is in Anthropic's shape too.
  app.use('/v1/messages/*', answerErrorsAs('anthropic'));
  // Clients that can set only a base URL and a key (Claude Code, Codex) send a tenant key alone.
  app.use('/v1/*', authenticate(deps, { tenantKeyAlone: true }));
  // Metered endpoints: one pipeline (pipeline.ts), each in its dialect.
  app.route('/v1/chat/completions', meteredRoute(services, openAIChat));
  app.route('/v1/embeddings', meteredRoute(services, openAIEmbeddings));
  app.route('/v1/messages/count_tokens', countTokensRoutes());
  app.route('/v1/messages', meteredRoute(services, anthropicMessages));
  app.route('/v1/responses', meteredRoute(services, openAIResponses));
  app.route('/v1/responses', storedResponseRoutes(services));
  app.route('/v1/models', modelRoutes(services));
  app.route('/v1/feedback', feedbackRoutes(services));
  return app;
}
