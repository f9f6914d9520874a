// Decides which of many similar events get a log line: at most one per key (e.g. a remote IP) per interval, and at
// most `maxLinesPerInterval` lines in all, so that a flood from many addresses cannot flood the log either. What is
// left out is counted and reported by the next line let through.

export interface LogRateLimiterOptions {
  /** A key gets at most one line per interval; the global cap counts lines per interval too. Default 60 s. */
  intervalMs?: number;
  /** Lines per interval for all keys together. Default 20. */
  maxLinesPerInterval?: number;
  now?: () => number;
}

export interface Admitted {
  /** Events of this key left out since its previous line. */
  suppressed: number;
  /** Events of other keys left out (by the global cap, or not reported by their own line) since the previous line. */
  suppressedOthers: number;
}

interface KeyState {
  lastLine: number;
  suppressed: number;
}

export class LogRateLimiter {
  private readonly intervalMs: number;
  private readonly maxLines: number;
  private readonly now: () => number;
  /** Keys in the order of their last line, oldest first; only keys with a line in the last interval are kept. */
  private readonly keys = new Map<string, KeyState>();
  private windowStart = Number.NEGATIVE_INFINITY;
  private linesInWindow = 0;
  private othersSuppressed = 0;

  constructor(opts: LogRateLimiterOptions = {}) {
    this.intervalMs = opts.intervalMs ?? 60_000;
    this.maxLines = opts.maxLinesPerInterval ?? 20;
    this.now = opts.now ?? Date.now;
  }

  /** Whether an event of `key` gets a line now: the counts to report with it, or undefined when it is left out. */
  admit(key: string): Admitted | undefined {
    const now = this.now();
    const state = this.keys.get(key);
    if (state !== undefined && now - state.lastLine < this.intervalMs) {
      state.suppressed++;
      return undefined;
    }
    if (now - this.windowStart >= this.intervalMs) {
      this.windowStart = now;
      this.linesInWindow = 0;
    }
    if (this.linesInWindow >= this.maxLines) {
      this.othersSuppressed++;
      return undefined;
    }
    this.linesInWindow++;
    this.keys.delete(key); // re-inserted below, as the newest
    this.forgetStale(now);
    const admitted = { suppressed: state?.suppressed ?? 0, suppressedOthers: this.othersSuppressed };
    this.othersSuppressed = 0;
    this.keys.set(key, { lastLine: now, suppressed: 0 });
    return admitted;
  }

  /** Keys whose last line is an interval old would be let through anyway: drop them, keeping their counts. */
  private forgetStale(now: number): void {
    for (const [key, state] of this.keys) {
      if (now - state.lastLine < this.intervalMs) break; // the map is ordered by last line
      this.othersSuppressed += state.suppressed;
      this.keys.delete(key);
    }
  }
}
