import { getEventListeners } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import { runMaintenanceWorker } from '../../scripts/lib/maintenance-worker.ts';
import { connectDatabase } from '../helpers/stack.ts';

// `npm start` runs the maintenance worker for as long as the stack runs. Here
// its loop runs a few hundred ticks with a 1 ms interval against the test
// database: what a tick leaves behind shows up as a growing count.
const sql = connectDatabase();
afterAll(async () => {
  await sql.end();
});

describe('the maintenance worker over many ticks', () => {
  it('keeps the abort listeners on its stop signal at zero and its RSS bounded; no MaxListenersExceededWarning', async () => {
    const ticks = 300;
    const stop = new AbortController();
    const listeners: number[] = [];
    const rss: number[] = [];
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      await runMaintenanceWorker({
        sql,
        // No HTTP tasks; one SQL schedule that parallel test files already run and tolerate.
        http: {},
        intervalMs: 1,
        once: false,
        only: ['reap_expired_jobs'],
        signal: stop.signal,
        log: () => {},
        onTick(tick) {
          listeners.push(getEventListeners(stop.signal, 'abort').length);
          if (tick % 50 === 0) rss.push(process.memoryUsage().rss);
          if (tick === ticks) stop.abort();
        },
      });
    } finally {
      process.off('warning', onWarning);
    }
    expect(listeners).toHaveLength(ticks);
    // Between ticks the loop holds no listener on the long-lived signal.
    expect(listeners.filter((count) => count !== 0)).toEqual([]);
    expect(warnings).not.toContain('MaxListenersExceededWarning');
    // A generous bound, not a measurement: a leak of a listener and its closure per tick stays far below it.
    const growthMb = (Math.max(...rss) - rss[0]) / 2 ** 20;
    console.log(
      `maintenance worker soak: ${ticks} ticks, RSS ${rss.map((b) => Math.round(b / 2 ** 20)).join(' → ')} MB`,
    );
    expect(growthMb).toBeLessThan(64);
  });
});
