/**
 * Repeats `attempt` until `done` holds for its result, then returns that
 * result; after `timeoutMs` it returns the last result for the caller's
 * assertion to reject. Tests wait for the state they assert (a router that
 * has loaded a policy, a row a background flush writes) instead of sleeping
 * for a cache TTL: the happy path returns as soon as the state is there, and
 * the deadline is only a bound for a test that is going to fail anyway.
 */
export async function eventually<T>(
  attempt: () => T | Promise<T>,
  done: (value: T) => boolean,
  { timeoutMs = 20_000, intervalMs = 50 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await attempt();
  while (!done(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    value = await attempt();
  }
  return value;
}
