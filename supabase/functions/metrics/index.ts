import { createRuntimeDependencies } from '../_shared/runtime.ts';
import { createMetricsApp } from './app.ts';

const environment = Deno.env.toObject();
Deno.serve(createMetricsApp(createRuntimeDependencies(environment), { environment }).fetch);
