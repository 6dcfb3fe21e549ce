import { createRuntimeDependencies } from '../_shared/runtime.ts';
import { createKeysApp } from './app.ts';

Deno.serve(createKeysApp(createRuntimeDependencies(Deno.env.toObject())).fetch);
