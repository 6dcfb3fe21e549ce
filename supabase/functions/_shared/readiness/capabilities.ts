import type { Database } from '../db.ts';

/**
 * Optional capabilities that land with later issues, detected by the presence
 * of their tables and functions in the database, so readiness and metrics
 * light up as each one is migrated and say why they skip until then.
 */
export interface Capabilities {
  jobs: boolean;
  artifacts: boolean;
  jobDeadLetters: boolean;
  secureKeys: boolean;
  usageRecords: boolean;
  budgetReservations: boolean;
  usageInvariant: boolean;
  providerCatalog: boolean;
  providerHealth: boolean;
  modelReputation: boolean;
}

/** One round trip: which of the optional tables and functions exist. */
export async function detectCapabilities(db: Database): Promise<Capabilities> {
  const [row] = await db<Capabilities[]>`
    select to_regclass('public.jobs') is not null as "jobs",
           to_regclass('public.artifacts') is not null as "artifacts",
           to_regclass('public.job_dead_letters') is not null as "jobDeadLetters",
           to_regclass('public.secure_keys') is not null as "secureKeys",
           to_regclass('public.usage_records') is not null as "usageRecords",
           to_regclass('public.budget_reservations') is not null as "budgetReservations",
           to_regprocedure('public.usage_invariant_violations()') is not null as "usageInvariant",
           (to_regclass('public.llm_providers') is not null and to_regclass('public.llm_models') is not null)
             as "providerCatalog",
           to_regclass('public.provider_health') is not null as "providerHealth",
           to_regclass('public.model_reputation') is not null as "modelReputation"`;
  return row;
}
