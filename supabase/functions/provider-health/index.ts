import { createRuntimeDependencies } from '../_shared/runtime.ts';
import { createProviderKeyResolver } from '../_shared/vault/resolver.ts';
import { createProviderHealthApp } from './app.ts';

const deps = createRuntimeDependencies(Deno.env.toObject());
Deno.serve(
  createProviderHealthApp(deps, { keys: createProviderKeyResolver(deps, { actor: 'provider-health' }) }).fetch,
);
