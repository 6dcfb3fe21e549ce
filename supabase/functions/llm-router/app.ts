import { authenticate } from '../_shared/auth/middleware.ts';
import type { AppDependencies } from '../_shared/dependencies.ts';
import { createFunctionApp } from '../_shared/function-app.ts';
import { openAIChat } from './dialects/openai-chat.ts';
import { openAIEmbeddings } from './dialects/openai-embeddings.ts';
import { meteredRoute } from './pipeline.ts';
import { feedbackRoutes } from './routes/feedback.ts';
import { modelRoutes } from './routes/models.ts';
import { createRouterServices, type LlmRouterOptions } from './services.ts';

/**
 * The OpenAI-compatible LLM endpoint: point the `openai` SDK at
 * `<FUNCTIONS_URL>/llm-router/v1`. Errors use OpenAI's error shape.
 */
export function createLlmRouterApp(deps: AppDependencies, options: LlmRouterOptions) {
  const services = createRouterServices(deps, options);
  const app = createFunctionApp('llm-router', deps, { errorFormat: 'openai' });
  app.use('/v1/*', authenticate(deps));
  // Metered endpoints: one pipeline (pipeline.ts), each in its dialect.
  app.route('/v1/chat/completions', meteredRoute(services, openAIChat));
  app.route('/v1/embeddings', meteredRoute(services, openAIEmbeddings));
  app.route('/v1/models', modelRoutes(services));
  app.route('/v1/feedback', feedbackRoutes(services));
  return app;
}
