import { closeLeasesOnUnload, createLedger, LeasedBudgetLedger } from '../_shared/economics/lease-ledger.ts';
import { createRuntimeDependencies } from '../_shared/runtime.ts';
import { createProviderKeyResolver } from '../_shared/vault/resolver.ts';
import { createLlmRouterApp } from './app.ts';

const deps = createRuntimeDependencies(Deno.env.toObject());
const ledger = createLedger(deps.db, deps.config, deps.clock, deps.logger);
if (ledger instanceof LeasedBudgetLedger) closeLeasesOnUnload(ledger);
Deno.serve(createLlmRouterApp(deps, { keys: createProviderKeyResolver(deps), ledger }).fetch);
