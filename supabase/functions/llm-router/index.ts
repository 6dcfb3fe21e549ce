import { closeLeasesOnUnload, LeasedBudgetLedger } from '../_shared/economics/lease-ledger.ts';
import { createRuntimeDependencies } from '../_shared/runtime.ts';
import { createProviderKeyResolver } from '../_shared/vault/resolver.ts';
import { createLlmRouterApp } from './app.ts';
import { createRouterLedger } from './services.ts';

const deps = createRuntimeDependencies(Deno.env.toObject());
const ledger = createRouterLedger(deps);
if (ledger instanceof LeasedBudgetLedger) closeLeasesOnUnload(ledger);
Deno.serve(createLlmRouterApp(deps, { keys: createProviderKeyResolver(deps), ledger }).fetch);
