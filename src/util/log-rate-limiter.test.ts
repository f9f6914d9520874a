import { describe, expect, test } from 'vitest';
import { LogRateLimiter } from './log-rate-limiter.js';

function limiter(maxLinesPerInterval = 20) {
  const clock = { t: 1_000_000 };
  return { clock, l: new LogRateLimiter({ intervalMs: 60_000, maxLinesPerInterval, now: () => clock.t }) };
}

describe('LogRateLimiter', () => {
  test('one line per key per interval; the next line counts what was left out', () => {
    const { clock, l } = limiter();
    expect(l.admit('10.0.0.1')).toEqual({ suppressed: 0, suppressedOthers: 0 });
    for (let i = 0; i < 5; i++) expect(l.admit('10.0.0.1')).toBeUndefined();
    clock.t += 59_999;
    expect(l.admit('10.0.0.1')).toBeUndefined();
    clock.t += 1;
    expect(l.admit('10.0.0.1')).toEqual({ suppressed: 6, suppressedOthers: 0 });
    expect(l.admit('10.0.0.1')).toBeUndefined();
  });

  test('keys are limited independently', () => {
    const { l } = limiter();
    expect(l.admit('a')).toBeDefined();
    expect(l.admit('b')).toBeDefined();
    expect(l.admit('a')).toBeUndefined();
    expect(l.admit('b')).toBeUndefined();
  });

  test('a flood from many keys is capped per interval and counted in the next line', () => {
    const { clock, l } = limiter(3);
    const lines = Array.from({ length: 100 }, (_, i) => l.admit(`k${i}`)).filter((a) => a !== undefined);
    expect(lines).toHaveLength(3);
    clock.t += 60_000;
    expect(l.admit('k99')).toEqual({ suppressed: 0, suppressedOthers: 97 });
    expect(l.admit('k98')).toEqual({ suppressed: 0, suppressedOthers: 0 });
  });

  test('counts of a key forgotten as stale go to the next line of any key', () => {
    const { clock, l } = limiter();
    l.admit('a');
    l.admit('a');
    l.admit('a');
    clock.t += 60_000;
    expect(l.admit('b')).toEqual({ suppressed: 0, suppressedOthers: 2 });
    expect(l.admit('a')).toEqual({ suppressed: 0, suppressedOthers: 0 }); // its count was already reported
  });

  test('memory stays bounded: only keys with a line in the last interval are kept', () => {
    const { clock, l } = limiter(5);
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 100; i++) l.admit(`r${round}k${i}`);
      clock.t += 60_000;
    }
    expect((l as unknown as { keys: Map<string, unknown> }).keys.size).toBeLessThanOrEqual(5);
  });
});
