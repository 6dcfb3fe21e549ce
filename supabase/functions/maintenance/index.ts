import { createRuntimeDependencies } from '../_shared/runtime.ts';
import { createMaintenanceApp } from './app.ts';

Deno.serve(createMaintenanceApp(createRuntimeDependencies(Deno.env.toObject())).fetch);
