import { afterEach, expect, test, vi } from 'vitest';
import { pino } from 'pino';
import type { Connection } from '@libp2p/interface';
import { Liveness } from './liveness.js';

const log = pino({ level: 'silent' });

/** A connection whose muxer answers pings after `answerMs`, or never (undefined). */
function fakeConn(answerMs: number | undefined): Connection & { pings: number; aborted?: Error } {
  const conn = {
    status: 'open',
    remotePeer: { toString: () => 'peer' },
    pings: 0,
    aborted: undefined as Error | undefined,
    abort(err: Error) {
      conn.aborted = err;
      conn.status = 'closed';
    },
    muxer: {
      ping: ({ signal }: { signal: AbortSignal }) => {
        conn.pings++;
        return new Promise<number>((resolve, reject) => {
          if (answerMs !== undefined) setTimeout(() => resolve(answerMs), answerMs);
          signal.addEventListener('abort', () => reject(signal.reason as Error));
        });
      },
    },
  };
  return conn as unknown as Connection & { pings: number; aborted?: Error };
}

afterEach(() => vi.useRealTimers());

test('a peer that answers keeps its connection, one ping per interval, and its rtt is recorded', async () => {
  vi.useFakeTimers();
  const conn = fakeConn(3);
  const liveness = new Liveness({ getConnections: () => [conn] }, log, { intervalMs: 10_000, timeoutMs: 10_000 });
  liveness.start();
  await vi.advanceTimersByTimeAsync(60_000);
  liveness.stop();
  expect(conn.pings).toBe(6);
  expect(conn.aborted).toBeUndefined();
  expect(conn.rtt).toBe(3);
});

test('a peer that stops answering is dropped within interval + timeout, and only pinged once meanwhile', async () => {
  vi.useFakeTimers();
  const conn = fakeConn(undefined);
  const liveness = new Liveness({ getConnections: () => [conn] }, log, { intervalMs: 10_000, timeoutMs: 15_000 });
  liveness.start();
  await vi.advanceTimersByTimeAsync(24_999);
  expect(conn.aborted).toBeUndefined();
  expect(conn.pings).toBe(1); // the second tick found the first ping still waiting
  await vi.advanceTimersByTimeAsync(1);
  liveness.stop();
  expect(conn.aborted?.message).toMatch(/no answer to a ping within 15000 ms/);
});

test('a slow answer within the timeout is not a failure', async () => {
  vi.useFakeTimers();
  const conn = fakeConn(12_000);
  const liveness = new Liveness({ getConnections: () => [conn] }, log, { intervalMs: 10_000, timeoutMs: 15_000 });
  liveness.start();
  await vi.advanceTimersByTimeAsync(100_000);
  liveness.stop();
  expect(conn.aborted).toBeUndefined();
  expect(conn.pings).toBeGreaterThanOrEqual(4);
});
