/**
 * Where the console's endpoints are. A static host serves `config.json` beside
 * index.html (`npm start` and the tests generate it); without one, the values
 * baked in at build time (SWITCHYARD_CONSOLE_* variables) apply.
 */
export interface ConsoleConfig {
  /** `<project>/functions/v1`, without a trailing slash. */
  functionsUrl: string;
  /** The project's anon or publishable key: every call sends it as `apikey`. */
  anonKey: string;
  /** The project URL for Supabase Auth (email/password sign-in); absent on the local stack, which has no Auth server. */
  supabaseUrl?: string;
}

function clean(config: Partial<ConsoleConfig>): ConsoleConfig | undefined {
  if (!config.functionsUrl || !config.anonKey) return undefined;
  return {
    functionsUrl: config.functionsUrl.replace(/\/+$/, ''),
    anonKey: config.anonKey,
    supabaseUrl: config.supabaseUrl || undefined,
  };
}

export async function loadConfig(): Promise<ConsoleConfig | undefined> {
  try {
    const response = await fetch('./config.json', { cache: 'no-store' });
    if (response.ok) {
      const fromHost = clean((await response.json()) as Partial<ConsoleConfig>);
      if (fromHost) return fromHost;
    }
  } catch {
    // No config.json on this host: fall back to the build-time values.
  }
  return clean({
    functionsUrl: import.meta.env.SWITCHYARD_CONSOLE_FUNCTIONS_URL,
    anonKey: import.meta.env.SWITCHYARD_CONSOLE_ANON_KEY,
    supabaseUrl: import.meta.env.SWITCHYARD_CONSOLE_SUPABASE_URL,
  });
}
