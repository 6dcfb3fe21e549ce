import { createRuntimeDependencies } from '../_shared/runtime.ts';
import { createDlqListApp } from './app.ts';

Deno.serve(createDlqListApp(createRuntimeDependencies(Deno.env.toObject())).fetch);
