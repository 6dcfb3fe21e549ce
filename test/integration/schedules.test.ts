import { afterAll, describe, expect, it } from 'vitest';
import { detectCapabilities } from '../../supabase/functions/_shared/readiness/capabilities.ts';
import type { ReadinessSettings } from '../../supabase/functions/_shared/readiness/settings.ts';
import { schedulesOnTime } from '../../supabase/functions/_shared/readiness/schedules.ts';
import {
  call,
  connectDatabase,
  createUser,
  headersFor,
  serviceHeaders,
  signUserToken,
  stack,
} from '../helpers/stack.ts';

const sql = connectDatabase();
class Rollback extends Error {}
afterAll(async () => {
  await sql.end();
});

interface ErrorBody {
  error: { code: string; message: string; details: unknown };
}

const runTask = (name: string, headers: Record<string, string>) =>
  call(`/maintenance/run/${name}`, { method: 'POST', headers });

async function runsOf(name: string, sinceId: number) {
  return await sql<{ id: number; runner: string; outcome: string; error: string | null; result: unknown }[]>`
    select id::int, runner, outcome, error, result from public.scheduled_runs where name = ${name} and id > ${sinceId}
    order by id`;
}

async function lastRunId(): Promise<number> {
  const [row] = await sql<{ id: number }[]>`select coalesce(max(id), 0)::int as id from public.scheduled_runs`;
  return row.id;
}

describe('POST /maintenance/run/:name', () => {
  it('runs a SQL schedule for the service role with a job token, and records the run', async () => {
    const before = await lastRunId();
    const response = await runTask('reap_expired_reservations', serviceHeaders({ 'x-job-token': stack.jobToken }));
    const body = (await response.json()) as { run_id: number; name: string; outcome: string; result: unknown };
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ name: 'reap_expired_reservations', outcome: 'ok' });
    expect(body.result).toBeTypeOf('number');
    const runs = await runsOf('reap_expired_reservations', before);
    expect(runs.find((run) => run.id === body.run_id)).toEqual({
      id: body.run_id,
      runner: 'http',
      outcome: 'ok',
      error: null,
      result: body.result,
    });
  });

  it('refuses without the job token, with a wrong one, and to anyone but the service role; nothing runs', async () => {
    const before = await lastRunId();
    const withoutToken = await runTask('refresh_model_reputation', serviceHeaders());
    expect(withoutToken.status).toBe(401);
    expect(((await withoutToken.json()) as ErrorBody).error).toEqual({
      code: 'unauthorized',
      message: 'missing X-Job-Token header',
      details: null,
    });
    const wrongToken = await runTask(
      'refresh_model_reputation',
      serviceHeaders({ 'x-job-token': `${stack.jobToken}x` }),
    );
    expect(wrongToken.status).toBe(401);
    expect(((await wrongToken.json()) as ErrorBody).error.message).toBe('X-Job-Token is not valid');
    const user = await signUserToken(await createUser(sql, 'maintenance'));
    const asUser = await runTask('refresh_model_reputation', headersFor(user, { 'x-job-token': stack.jobToken }));
    expect(asUser.status).toBe(403);
    const anonymous = await runTask('refresh_model_reputation', { 'x-job-token': stack.jobToken });
    expect(anonymous.status).toBe(401);
    // No other test runs this schedule over HTTP (the compromise runbook runs reap_expired_jobs in parallel).
    expect((await runsOf('refresh_model_reputation', before)).filter((run) => run.runner === 'http')).toEqual([]);
  });

  it('answers 404 for an unknown schedule, 400 for a bad name or an HTTP schedule, and records nothing', async () => {
    const before = await lastRunId();
    const headers = serviceHeaders({ 'x-job-token': stack.jobToken });
    const unknown = await runTask('no_such_schedule', headers);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as ErrorBody).error).toEqual({
      code: 'not_found',
      message: 'no schedule named no_such_schedule',
      details: null,
    });
    const badName = await runTask('Bad-Name', headers);
    expect(badName.status).toBe(400);
    expect(((await badName.json()) as ErrorBody).error.message).toBe('name: must be a schedule name');
    const http = await runTask('provider_health', headers);
    expect(http.status).toBe(400);
    expect(((await http.json()) as ErrorBody).error).toEqual({
      code: 'validation_failed',
      message: 'provider_health is an HTTP schedule: POST /provider-health/run',
      details: { http_path: '/provider-health/run' },
    });
    expect(
      // reap_expired_jobs: the compromise runbook runs it over HTTP in parallel with this file.
      (await sql`select 1 from public.scheduled_runs where id > ${before} and runner = 'http'
                 and name not in ('provider_health', 'reap_expired_jobs')`).length,
    ).toBe(0);
  });

  it('GET /maintenance/schedules lists every schedule with its latest run (service role only)', async () => {
    await runTask('reap_expired_jobs', serviceHeaders({ 'x-job-token': stack.jobToken }));
    const response = await call('/maintenance/schedules', { headers: serviceHeaders() });
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      schedules: {
        name: string;
        kind: string;
        interval_seconds: number;
        last_outcome: string | null;
        last_success_at: string | null;
      }[];
    };
    const reaper = body.schedules.find((schedule) => schedule.name === 'reap_expired_jobs');
    expect(reaper).toMatchObject({ kind: 'sql', interval_seconds: 60, last_outcome: 'ok' });
    expect(Date.now() - Date.parse(reaper!.last_success_at!)).toBeLessThan(10 * 60_000);
    const user = await signUserToken(await createUser(sql, 'maintenance-reader'));
    expect((await call('/maintenance/schedules', { headers: headersFor(user) })).status).toBe(403);
  });
});

describe('provider-health records its runs', () => {
  it('each call is a run of the provider_health schedule', async () => {
    const before = await lastRunId();
    const response = await call('/provider-health/run', {
      method: 'POST',
      headers: serviceHeaders({ 'x-job-token': stack.jobToken }),
    });
    const body = (await response.json()) as { probed: number };
    expect(response.status).toBe(200);
    const runs = await runsOf('provider_health', before);
    expect(runs.map((run) => ({ runner: run.runner, outcome: run.outcome, result: run.result }))).toContainEqual({
      runner: 'http',
      outcome: 'ok',
      result: { probed: body.probed },
    });
  });
});

describe('readiness: schedules_on_time', () => {
  it('skips (or fails when required) without runs, passes when on time, fails when late (in a rolled-back transaction)', async () => {
    const outcomes: Record<string, { status: string; detail: string }> = {};
    const capabilities = await detectCapabilities(sql as never);
    const settings: ReadinessSettings = { checkTimeoutMs: 800, dlqMaxDepth: 0, providerHealthMaxAgeSeconds: 60 };
    await sql.begin(async (tx) => {
      // The check reads through this transaction, so runs other files record do not show.
      const context = (overrides: Partial<ReadinessSettings> = {}) => ({
        deps: { db: tx } as never,
        settings: { ...settings, ...overrides },
        capabilities: () => Promise.resolve(capabilities),
      });
      await tx`delete from public.scheduled_runs`;
      outcomes.none = await schedulesOnTime.run(context());
      outcomes.noneRequired = await schedulesOnTime.run(context({ schedulesRequired: true }));
      const schedules = await tx<{ name: string }[]>`select name from public.schedules where enabled`;
      for (const { name } of schedules) {
        await tx`insert into public.scheduled_runs (name, runner, started_at, finished_at, outcome)
                 values (${name}, 'test', now() - interval '30 seconds', now() - interval '29 seconds', 'ok')`;
      }
      outcomes.onTime = await schedulesOnTime.run(context());
      // The reaper (every 60 s) last succeeded 4 minutes ago and failed since: over 3x its interval.
      await tx`update public.scheduled_runs set started_at = now() - interval '4 minutes' where name = 'reap_expired_jobs'`;
      await tx`insert into public.scheduled_runs (name, runner, finished_at, outcome, error)
               values ('reap_expired_jobs', 'test', now(), 'failed', 'boom')`;
      outcomes.late = await schedulesOnTime.run(context());
      outcomes.lenient = await schedulesOnTime.run(context({ scheduleLateFactor: 5 }));
      throw new Rollback();
    }).catch((error) => {
      if (!(error instanceof Rollback)) throw error;
    });
    expect(outcomes.none).toEqual({
      status: 'skip',
      detail: 'no scheduled run recorded yet (pg_cron, or `npm run worker`)',
    });
    expect(outcomes.noneRequired.status).toBe('fail');
    expect(outcomes.noneRequired.detail).toContain('READINESS_SCHEDULES_REQUIRED is true');
    expect(outcomes.onTime.status, outcomes.onTime.detail).toBe('pass');
    expect(outcomes.late.status).toBe('fail');
    expect(outcomes.late.detail).toMatch(
      /^late \(over 3x the interval\): reap_expired_jobs \(last success 2[0-9]{2} s ago, every 60 s\)$/,
    );
    expect(outcomes.lenient.status).toBe('pass');
  });
});
