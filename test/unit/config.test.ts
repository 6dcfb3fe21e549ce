import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../supabase/functions/_shared/config.ts';

const minimal = {
  SUPABASE_DB_URL: 'postgresql://postgres:postgres@127.0.0.1:54322/postgres',
  SUPABASE_JWT_SECRET: 's'.repeat(40),
  SUPABASE_ANON_KEY: 'anon',
};

describe('loadConfig', () => {
  it('reads a minimal environment with defaults', () => {
    const config = loadConfig(minimal);
    expect(config.maxBodyBytes).toBe(1024 * 1024);
    expect(config.databasePrepare).toBe(true);
    expect(config.allowedOrigins).toEqual([]);
    expect(config.jwt.jwksCooldownMs).toBe(30_000);
  });

  it('turns prepared statements off behind the transaction pooler (port 6543)', () => {
    expect(
      loadConfig({ ...minimal, SUPABASE_DB_URL: 'postgresql://u:p@pooler.example.com:6543/postgres' }).databasePrepare,
    ).toBe(false);
  });

  it('fails loudly naming the missing variables, never their values', () => {
    let thrown: unknown;
    try {
      loadConfig({ SUPABASE_JWT_SECRET: 'short-secret-value', MAX_BODY_BYTES: '-1' });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const message = (thrown as ConfigError).message;
    expect(message).toMatch(/SUPABASE_DB_URL: SUPABASE_DB_URL or DATABASE_URL is required/);
    expect(message).toMatch(/SUPABASE_JWT_SECRET: must be at least 32 characters/);
    expect(message).toMatch(/MAX_BODY_BYTES/);
    expect(message).toMatch(/SUPABASE_ANON_KEY: at least one project key/);
    expect(message).not.toContain('short-secret-value');
  });

  it('splits comma lists of keys and origins', () => {
    const config = loadConfig({
      ...minimal,
      SUPABASE_SECRET_KEYS: 'sb_secret_a, sb_secret_b',
      ALLOWED_ORIGINS: 'https://a.example,https://b.example',
    });
    expect(config.projectKeys.secretKeys).toEqual(['sb_secret_a', 'sb_secret_b']);
    expect(config.allowedOrigins).toEqual(['https://a.example', 'https://b.example']);
  });
});
