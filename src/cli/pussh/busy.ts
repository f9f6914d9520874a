// A registry that is busy (429: its upload sessions are all taken, say by another push) or cannot store for a
// moment (503: containerd restarting) says when to come back. pussh waits as told instead of failing the host's
// push, as long as the registry stays busy for at most `totalMs` on one call.
import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryRejectedError } from './errors.js';

export interface Patience {
  /** How long one call may go on being answered busy before its push fails. */
  totalMs: number;
  /** The longest single wait, whatever Retry-After asks for. */
  longestWaitMs: number;
}

export const DEFAULT_PATIENCE: Patience = { totalMs: 120_000, longestWaitMs: 30_000 };
/** Without a Retry-After. */
const DEFAULT_WAIT_MS = 1_000;

function isBusy(err: unknown): err is RegistryRejectedError {
  return err instanceof RegistryRejectedError && (err.status === 429 || err.status === 503);
}

/** Runs `call` again after each busy answer, waiting as the answer asks, until it succeeds or patience runs out. */
export async function whileBusy<T>(call: () => Promise<T>, patience: Patience, opts: { signal?: AbortSignal; waiting(err: RegistryRejectedError, ms: number): void }): Promise<T> {
  const giveUpAt = Date.now() + patience.totalMs;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (!isBusy(err)) throw err;
      const asked = err.retryAfterSeconds === undefined ? DEFAULT_WAIT_MS : err.retryAfterSeconds * 1000;
      const ms = Math.min(patience.longestWaitMs, Math.max(asked, 50));
      if (Date.now() + ms > giveUpAt) throw err;
      opts.waiting(err, ms);
      await sleep(ms, undefined, { signal: opts.signal });
    }
  }
}
