import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { bin, repoRoot } from './paths.ts';
import { withDatabase } from './database.ts';

const demoProviderSlug = 'switchyard-demo';

export interface DemoProvider {
  url: string;
  stop(): void;
}

/**
 * For a newcomer's first call: when the vault holds no real provider key, run
 * the test suite's fake upstream on loopback and register it as the provider
 * `switchyard-demo` (models `demo-chat` and `demo-embeddings`) with a key in
 * the vault. Returns undefined when real keys exist (nothing is registered).
 */
export async function registerDemoProviderIfNoKeys(options: {
  dbUrl: string;
  functionsUrl: string;
  anonKey: string;
  serviceRoleKey: string;
  port: number;
}): Promise<DemoProvider | undefined> {
  const sql = withDatabase(options.dbUrl);
  let child: ChildProcess | undefined;
  try {
    const [real] = await sql<{ count: number }[]>`
      select count(*)::int as count from public.secure_keys where status = 'active' and provider <> ${demoProviderSlug}`;
    if (real.count > 0) return undefined;

    child = spawn(bin('tsx'), [
      path.join(repoRoot, 'test', 'fakes', 'fake-upstream-server.ts'),
      '--port',
      String(options.port),
    ], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const started = child;
    const url = await new Promise<string>((resolve, reject) => {
      let output = '';
      started.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = /"url":"([^"]+)"/.exec(output);
        if (match) resolve(match[1]);
      });
      started.on('exit', (code) => reject(new Error(`the demo upstream exited (${code})`)));
    });

    const [provider] = await sql<{ id: string }[]>`
      insert into public.llm_providers (slug, kind, base_url, region)
      values (${demoProviderSlug}, 'openai_compatible', ${`${url}/v1`}, 'local')
      on conflict (slug) do update set kind = excluded.kind, base_url = excluded.base_url, enabled = true
      returning id`;
    await sql`
      insert into public.llm_models (provider_id, alias, upstream_model, input_cost_per_million, output_cost_per_million,
                                     context_window, max_output_tokens, capabilities)
      values (${provider.id}, 'demo-chat', 'demo-chat', 150000, 600000, 128000, 4096, array['chat', 'stream', 'tools', 'json']),
             (${provider.id}, 'demo-embeddings', 'demo-embeddings', 20000, 0, 8191, 1, array['embeddings'])
      on conflict (provider_id, alias) do nothing`;
    const [existing] = await sql<{ count: number }[]>`
      select count(*)::int as count from public.secure_keys where status = 'active' and provider = ${demoProviderSlug}`;
    if (existing.count === 0) {
      // Through the keys function, so the demo key is encrypted like any other.
      const response = await fetch(`${options.functionsUrl}/keys`, {
        method: 'POST',
        headers: {
          apikey: options.anonKey,
          authorization: `Bearer ${options.serviceRoleKey}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ provider: demoProviderSlug, secret: 'demo-key-for-the-local-fake-upstream' }),
      });
      if (response.status !== 201) throw new Error(`storing the demo key answered ${response.status}`);
    }
    return { url, stop: () => started.kill('SIGTERM') };
  } catch (error) {
    child?.kill('SIGTERM');
    throw error;
  } finally {
    await sql.end();
  }
}
