import { authenticate } from '../_shared/auth/middleware.ts';
import type { AppDependencies } from '../_shared/dependencies.ts';
import { createFunctionApp } from '../_shared/function-app.ts';
import { apiKeyRoutes } from './routes/api-keys.ts';
import { economicsRoutes } from './routes/economics.ts';
import { reputationRoutes } from './routes/reputation.ts';
import { tenantRoutes } from './routes/tenants.ts';

/** Operator API: tenants, members, tenant API keys, budgets, rate limits, usage and model reputation (service role, or a tenant's admin). */
export function createOpsApp(deps: AppDependencies) {
  const app = createFunctionApp('ops', deps, { operatorEndpoint: true });
  app.use('*', authenticate(deps, { allow: ['service_role', 'user'] }));
  app.route('/tenants', tenantRoutes(deps));
  app.route('/api-keys', apiKeyRoutes(deps));
  app.route('/', economicsRoutes(deps));
  app.route('/', reputationRoutes(deps));
  return app;
}
