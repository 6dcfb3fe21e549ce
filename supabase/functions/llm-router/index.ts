import { createRuntimeDependencies } from '../_shared/runtime.ts';
import { createProviderKeyResolver } from '../_shared/vault/resolver.ts';
import { createLlmRouterApp } from './app.ts';

const deps = createRuntimeDependencies(Deno.env.toObject());
Deno.serve(createLlmRouterApp(deps, { keys: createProviderKeyResolver(deps) }).fetch);
