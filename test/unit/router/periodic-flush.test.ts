import { describe, expect, it } from 'vitest';
import { PeriodicFlush } from '../../../supabase/functions/_shared/router/periodic-flush.ts';

describe('PeriodicFlush', () => {
  it('flushes at most once per interval and never twice at once', async () => {
    let now = 1_000;
    const clock = { now: () => new Date(now) };
    let flushes = 0;
    let release: () => void = () => {};
    const flusher = new PeriodicFlush(clock, 100, () => {
      flushes += 1;
      return new Promise<void>((resolve) => (release = resolve));
    });

    flusher.poke();
    expect(flushes).toBe(0); // the interval starts at construction

    now += 100;
    flusher.poke();
    flusher.poke();
    expect(flushes).toBe(1);

    now += 500; // interval passed, but the first flush is still in flight
    flusher.poke();
    expect(flushes).toBe(1);

    release();
    await new Promise((resolve) => setTimeout(resolve, 0));
    flusher.poke(); // done, and 500 ms since it started: the next one goes
    expect(flushes).toBe(2);
    release();
    await new Promise((resolve) => setTimeout(resolve, 0));
    now += 99;
    flusher.poke();
    expect(flushes).toBe(2);
  });

  it('run() flushes at once and restarts the interval', async () => {
    let now = 0;
    let flushes = 0;
    const flusher = new PeriodicFlush({ now: () => new Date(now) }, 100, () => {
      flushes += 1;
      return Promise.resolve();
    });
    await flusher.run();
    expect(flushes).toBe(1);
    now += 99;
    flusher.poke();
    expect(flushes).toBe(1);
  });
});
