// Writes supabase/functions/_shared/readiness/migration-manifest.ts from the
// migrations folder: deployed functions cannot read the folder, and readiness
// must know which versions "at head" means. `npm test` fails when it is stale.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { functionsDir } from './lib/paths.ts';
import { migrationVersions, renderMigrationManifest } from './lib/migration-manifest.ts';

const target = path.join(functionsDir, '_shared', 'readiness', 'migration-manifest.ts');
await writeFile(target, renderMigrationManifest(await migrationVersions()));
console.log(`wrote ${path.relative(process.cwd(), target)}`);
