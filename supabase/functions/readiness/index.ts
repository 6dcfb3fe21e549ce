import { createRuntimeDependencies } from '../_shared/runtime.ts';
import { createReadinessApp } from './app.ts';

Deno.serve(createReadinessApp(createRuntimeDependencies(Deno.env.toObject())).fetch);
