import type { ReadinessCheck } from './checks.ts';

/** A secret the deployment needs; any one of `names` satisfies it. */
interface SecretRequirement {
  names: readonly string[];
  why: string;
}

/** What a launch needs set in the functions' secrets. Names only: values are never read here. */
const requiredSecrets: readonly SecretRequirement[] = [
  { names: ['SUPABASE_DB_URL', 'DATABASE_URL'], why: 'database' },
  { names: ['SUPABASE_JWT_SECRET', 'SUPABASE_JWKS_URL'], why: 'user JWT verification' },
  { names: ['SUPABASE_ANON_KEY', 'SUPABASE_PUBLISHABLE_KEYS'], why: 'client project key' },
  { names: ['SUPABASE_SERVICE_ROLE_KEY', 'SUPABASE_SECRET_KEYS'], why: 'service key' },
  { names: ['SWITCHYARD_MASTER_KEYS'], why: 'key-vault master keys' },
  { names: ['METRICS_TOKEN'], why: 'metrics bearer token' },
];

export const requiredSecretsPresent: ReadinessCheck = {
  name: 'required_secrets_present',
  run({ settings }) {
    const present = settings.presentVariables;
    if (!present) {
      return Promise.resolve({ status: 'skip', detail: 'the readiness app was not given its environment' });
    }
    const missing = requiredSecrets.filter((requirement) => !requirement.names.some((name) => present.has(name)));
    if (missing.length > 0) {
      const named = missing.map((requirement) => `${requirement.names.join(' or ')} (${requirement.why})`);
      return Promise.resolve({ status: 'fail', detail: `missing: ${named.join(', ')}` });
    }
    const found = requiredSecrets.map((requirement) => requirement.names.find((name) => present.has(name)));
    return Promise.resolve({ status: 'pass', detail: `present: ${found.join(', ')}` });
  },
};
