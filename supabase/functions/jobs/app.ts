import { authenticate } from '../_shared/auth/middleware.ts';
import type { AppDependencies } from '../_shared/dependencies.ts';
import { createFunctionApp } from '../_shared/function-app.ts';
import { cancelJobRoute } from './routes/cancel-job.ts';
import { enqueueJobRoute } from './routes/enqueue-job.ts';
import { getJobRoute } from './routes/get-job.ts';
import { listArtifactsRoute } from './routes/list-artifacts.ts';

/**
 * Jobs for tenants: enqueue (`POST /jobs`, Idempotency-Key honoured), read a
 * job and its events (`GET /jobs/:id`), cancel a waiting job
 * (`POST /jobs/:id/cancel`), list its outputs with signed Storage URLs
 * (`GET /jobs/:id/artifacts`; 503 storage_unavailable only there). Callers: a tenant member (user JWT, with
 * x-tenant-id when in several tenants), a tenant API key, or the service role.
 */
export function createJobsApp(deps: AppDependencies) {
  const app = createFunctionApp('jobs', deps);
  app.use('*', authenticate(deps, { allow: ['service_role', 'user', 'api_key'] }));
  app.route('/', enqueueJobRoute(deps));
  app.route('/', getJobRoute(deps));
  app.route('/', cancelJobRoute(deps));
  app.route('/', listArtifactsRoute(deps));
  return app;
}
