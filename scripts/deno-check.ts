// Type-checks every function entry point (and the local server) under Deno.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { denoExecutable, functionsDir, repoRoot } from './lib/paths.ts';
import { runInherited } from './lib/run.ts';

function functionEntryPoints(): string[] {
  return readdirSync(functionsDir)
    .filter((name) => !name.startsWith('_') && statSync(path.join(functionsDir, name)).isDirectory())
    .map((name) => path.join(functionsDir, name, 'index.ts'));
}

const targets = [
  ...functionEntryPoints(),
  path.join(repoRoot, 'scripts', 'serve-functions.ts'),
  path.join(repoRoot, 'scripts', 'bench', 'passthrough-server.ts'),
  path.join(repoRoot, 'scripts', 'bench', 'router-server.ts'),
];
const code = await runInherited(denoExecutable(), [
  'check',
  '--quiet',
  '--config',
  path.join(functionsDir, 'deno.json'),
  ...targets,
], {
  cwd: repoRoot,
  env: { ...process.env, DENO_NO_UPDATE_CHECK: '1' },
});
process.exit(code);
