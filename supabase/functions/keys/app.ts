import { authenticate } from '../_shared/auth/middleware.ts';
import type { AppDependencies } from '../_shared/dependencies.ts';
import { createFunctionApp } from '../_shared/function-app.ts';
import { createMasterKeyCheck } from '../_shared/vault/master-key-check.ts';
import { createKeyRoute } from './routes/create-key.ts';
import { disableVersionRoute } from './routes/disable-version.ts';
import { keyAuditRoute } from './routes/key-audit.ts';
import { listKeysRoutes } from './routes/list-keys.ts';
import { rotateKeyRoute } from './routes/rotate-key.ts';

export interface KeysAppOptions {
  /**
   * Called after a rotation or a disable: a key resolver in the same isolate
   * evicts the key at once (`resolver.evictKey`); other isolates within their TTL.
   */
  onKeyChanged?: (keyId: string) => void;
}

/**
 * The key vault API: provider API keys in, metadata and audit out. The
 * service role manages every key (global ones too); a tenant admin its
 * tenant's keys; members read metadata. No endpoint ever returns a secret.
 */
export function createKeysApp(deps: AppDependencies, options: KeysAppOptions = {}) {
  const onKeyChanged = options.onKeyChanged ?? (() => {});
  const ensureMasterKey = createMasterKeyCheck(deps.db, deps.kms);
  const app = createFunctionApp('keys', deps, { operatorEndpoint: true });
  app.use('*', authenticate(deps, { allow: ['service_role', 'user'] }));
  app.route('/', createKeyRoute(deps, ensureMasterKey));
  app.route('/', listKeysRoutes(deps));
  app.route('/', rotateKeyRoute(deps, ensureMasterKey, onKeyChanged));
  app.route('/', disableVersionRoute(deps, onKeyChanged));
  app.route('/', keyAuditRoute(deps));
  return app;
}
