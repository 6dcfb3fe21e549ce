import type { Clock } from '../clock.ts';

/**
 * When an isolate's aggregates go to the database: on a request, at most once
 * per `intervalMs` and never two flushes at once, so writes grow with time,
 * not with traffic. Used by provider health and quality signals.
 */
export class PeriodicFlush {
  private lastFlush: number;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly flush: () => Promise<void>,
  ) {
    this.lastFlush = clock.now().getTime();
  }

  /** Starts a flush when the interval has passed and none is in flight. */
  poke(): void {
    if (this.flushing || this.clock.now().getTime() - this.lastFlush < this.intervalMs) return;
    this.flushing = this.run().finally(() => {
      this.flushing = undefined;
    });
  }

  /** Flushes now (tests, shutdown); the interval restarts. */
  run(): Promise<void> {
    this.lastFlush = this.clock.now().getTime();
    return this.flush();
  }
}
