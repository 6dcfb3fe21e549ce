import { authenticate } from '../_shared/auth/middleware.ts';
import type { AppDependencies } from '../_shared/dependencies.ts';
import { createFunctionApp } from '../_shared/function-app.ts';
import { retryDeadLettersRoute } from './routes/retry-dead-letters.ts';

/** `POST /dlq-retry`: requeue dead letters by ids or filter, idempotent and audited (service role, or a tenant's operators and admins). */
export function createDlqRetryApp(deps: AppDependencies) {
  const app = createFunctionApp('dlq-retry', deps, { operatorEndpoint: true });
  app.use('*', authenticate(deps, { allow: ['service_role', 'user'] }));
  app.route('/', retryDeadLettersRoute(deps));
  return app;
}
