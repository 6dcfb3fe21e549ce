import { noProviderKeys } from '../_shared/router/provider-keys.ts';
import { createRuntimeDependencies } from '../_shared/runtime.ts';
import { createLlmRouterApp } from './app.ts';

// TODO(issue 5): take provider keys from the key vault's resolver.
Deno.serve(createLlmRouterApp(createRuntimeDependencies(Deno.env.toObject()), { keys: noProviderKeys }).fetch);
