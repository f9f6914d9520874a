// How long a step that failed for a passing reason (containerd not answering, a busy member) waits before
// each of its next tries: a failed copy, catch-up or rm --mesh. Their gossip does not come again.
export const RETRY_AFTER_MS = [30_000, 120_000, 600_000];

/** The timers of retries: all cleared at stop, and none set from then on (a try failing as the daemon stops). */
export class RetryTimers {
  readonly #timers = new Set<NodeJS.Timeout>();
  #stopped = false;

  /** Runs `retry` after `ms`, unless stopped by then. */
  after(ms: number, retry: () => void): void {
    if (this.#stopped) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      retry();
    }, ms).unref();
    this.#timers.add(timer);
  }

  stop(): void {
    this.#stopped = true;
    this.#timers.forEach(clearTimeout);
    this.#timers.clear();
  }
}
