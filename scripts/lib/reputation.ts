import type postgres from 'postgres';

/**
 * One maintenance run of the reputation refresh: folds up to `batchSize`
 * pending ratings and quality-signal rows into model_reputation (half-life:
 * the SQL default, 7 days). Returns how many it folded.
 */
export async function refreshModelReputation(sql: postgres.Sql, batchSize = 1000): Promise<number> {
  const [row] = await sql<{ folded: number }[]>`select public.refresh_model_reputation(${batchSize}) as folded`;
  return row.folded;
}
