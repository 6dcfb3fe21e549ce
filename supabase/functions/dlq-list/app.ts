import { authenticate } from '../_shared/auth/middleware.ts';
import type { AppDependencies } from '../_shared/dependencies.ts';
import { createFunctionApp } from '../_shared/function-app.ts';
import { listDeadLettersRoute } from './routes/list-dead-letters.ts';

/** `GET /dlq-list`: dead letters, newest first, keyset-paged (service role, or a tenant's operators and admins). */
export function createDlqListApp(deps: AppDependencies) {
  const app = createFunctionApp('dlq-list', deps, { operatorEndpoint: true });
  app.use('*', authenticate(deps, { allow: ['service_role', 'user'] }));
  app.route('/', listDeadLettersRoute(deps));
  return app;
}
