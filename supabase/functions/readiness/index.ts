import { createRuntimeDependencies } from '../_shared/runtime.ts';
import { createReadinessApp } from './app.ts';

const environment = Deno.env.toObject();
Deno.serve(createReadinessApp(createRuntimeDependencies(environment), { environment }).fetch);
