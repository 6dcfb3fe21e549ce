import { createRuntimeDependencies } from '../_shared/runtime.ts';
import { createOpsApp } from './app.ts';

Deno.serve(createOpsApp(createRuntimeDependencies(Deno.env.toObject())).fetch);
