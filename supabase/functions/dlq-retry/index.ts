import { createRuntimeDependencies } from '../_shared/runtime.ts';
import { createDlqRetryApp } from './app.ts';

Deno.serve(createDlqRetryApp(createRuntimeDependencies(Deno.env.toObject())).fetch);
