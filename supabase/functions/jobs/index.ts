import { createRuntimeDependencies } from '../_shared/runtime.ts';
import { createJobsApp } from './app.ts';

Deno.serve(createJobsApp(createRuntimeDependencies(Deno.env.toObject())).fetch);
