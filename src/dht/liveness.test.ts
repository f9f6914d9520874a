import { afterEach, expect, test, vi } from 'vitest';
import { pino } from 'pino';
import type { Connection } from '@libp2p/interface';
import { Liveness } from './liveness.js';

const log = pino({ level: 'silent' });

type FakeConn = Connection & { pings: number[]; aborted?: Error; hear(): void };

/** A connection whose muxer answers pings after `answerMs`, or never (undefined); `hear()` is the peer sending. */
function fakeConn(answerMs: number | undefined, direction: Connection['direction'] = 'outbound'): FakeConn {
  const maConn = new EventTarget();
  const conn = {
    status: 'open',
    direction,
    remotePeer: { toString: () => 'peer' },
    pings: [] as number[],
    aborted: undefined as Error | undefined,
    abort(err: Error) {
      conn.aborted = err;
      conn.status = 'closed';
    },
    hear: () => maConn.dispatchEvent(new Event('message')),
    muxer: {
      maConn,
      ping: ({ signal }: { signal: AbortSignal }) => {
        conn.pings.push(Date.now());
        return new Promise<number>((resolve, reject) => {
          if (answerMs !== undefined) {
            setTimeout(() => {
              conn.hear(); // the answer is heard like anything else
              resolve(answerMs);
            }, answerMs);
          }
          signal.addEventListener('abort', () => reject(signal.reason as Error));
        });
      },
    },
  };
  return conn as unknown as FakeConn;
}

function run(conns: Connection[], opts = { intervalMs: 10_000, timeoutMs: 10_000 }): Liveness {
  const liveness = new Liveness({ getConnections: () => conns }, log, opts);
  liveness.start();
  return liveness;
}

afterEach(() => vi.useRealTimers());

test('a quiet connection is pinged by its dialer once per interval, at multiples of the interval on the wall clock; rtt is recorded', async () => {
  vi.useFakeTimers({ now: 3_000 });
  const conn = fakeConn(3);
  const liveness = run([conn]);
  await vi.advanceTimersByTimeAsync(57_000);
  liveness.stop();
  // 10 000 only sees it open (as good as heard); from then on it is quiet at every dialer's tick.
  expect(conn.pings).toEqual([20_000, 30_000, 40_000, 50_000, 60_000]);
  expect(conn.aborted).toBeUndefined();
  expect(conn.rtt).toBe(3);
});

test("the listening end does not ping an idle connection while the dialer's pings arrive, and does once they stop", async () => {
  vi.useFakeTimers({ now: 0 });
  const conn = fakeConn(3, 'inbound');
  const dialerPings = setInterval(() => conn.hear(), 10_000); // the dialer's ticks fall on the same wall clock
  const liveness = run([conn]);
  await vi.advanceTimersByTimeAsync(60_000);
  expect(conn.pings).toEqual([]);
  clearInterval(dialerPings); // last heard at 60 000
  await vi.advanceTimersByTimeAsync(20_000);
  liveness.stop();
  expect(conn.pings).toEqual([75_000]); // quiet for 15 s at its tick half an interval after the dialer's
  expect(conn.aborted).toBeUndefined();
});

test('a connection the peer keeps talking on is not pinged at all', async () => {
  vi.useFakeTimers({ now: 0 });
  const conn = fakeConn(3);
  const traffic = setInterval(() => conn.hear(), 4_000);
  const liveness = run([conn]);
  await vi.advanceTimersByTimeAsync(60_000);
  liveness.stop();
  clearInterval(traffic);
  expect(conn.pings).toEqual([]);
});

test('a peer that stops answering is dropped within interval + timeout of a ping, and only pinged once meanwhile', async () => {
  vi.useFakeTimers({ now: 0 });
  const conn = fakeConn(undefined);
  const liveness = run([conn], { intervalMs: 10_000, timeoutMs: 15_000 });
  await vi.advanceTimersByTimeAsync(34_999); // seen open at 5 000, still fresh at 10 000, pinged at 20 000
  expect(conn.aborted).toBeUndefined();
  expect(conn.pings).toEqual([20_000]); // the ticks at 30 000 found that ping still waiting
  await vi.advanceTimersByTimeAsync(1);
  liveness.stop();
  expect(conn.aborted?.message).toMatch(/no answer to a ping within 15000 ms/);
});

test("a dialer gone quiet is dropped by the listening end 25 s after its last ping (10 s interval)", async () => {
  vi.useFakeTimers({ now: 0 });
  const conn = fakeConn(undefined, 'inbound');
  const dialerPings = setInterval(() => conn.hear(), 10_000);
  const liveness = run([conn]);
  await vi.advanceTimersByTimeAsync(20_000); // heard at 10 000 and 20 000, then the dialer is gone
  clearInterval(dialerPings);
  await vi.advanceTimersByTimeAsync(24_999);
  expect(conn.aborted).toBeUndefined();
  await vi.advanceTimersByTimeAsync(1);
  liveness.stop();
  expect(conn.pings).toEqual([35_000]);
  expect(conn.aborted?.message).toMatch(/no answer to a ping within 10000 ms/);
});

test('a peer last heard just too recently to ping at one check is dropped within 1.75 intervals + timeout', async () => {
  vi.useFakeTimers({ now: 0 });
  const conn = fakeConn(undefined, 'inbound');
  const liveness = run([conn]);
  await vi.advanceTimersByTimeAsync(7_501);
  conn.hear(); // its last word: 7.499 s old at the check at 15 000, so not pinged then
  await vi.advanceTimersByTimeAsync(27_498);
  expect(conn.aborted).toBeUndefined();
  await vi.advanceTimersByTimeAsync(1);
  liveness.stop();
  expect(conn.pings).toEqual([25_000]);
  expect(conn.aborted).toBeDefined();
});

test('a slow answer within the timeout is not a failure', async () => {
  vi.useFakeTimers({ now: 0 });
  const conn = fakeConn(12_000);
  const liveness = run([conn], { intervalMs: 10_000, timeoutMs: 15_000 });
  await vi.advanceTimersByTimeAsync(100_000);
  liveness.stop();
  expect(conn.aborted).toBeUndefined();
  expect(conn.pings.length).toBeGreaterThanOrEqual(4);
});

test('a muxer that does not tell what it hears is pinged at every tick of its direction', async () => {
  vi.useFakeTimers({ now: 0 });
  const conn = fakeConn(3, 'inbound');
  delete (conn as unknown as { muxer: { maConn?: EventTarget } }).muxer.maConn;
  const liveness = run([conn]);
  await vi.advanceTimersByTimeAsync(30_000);
  liveness.stop();
  expect(conn.pings).toEqual([5_000, 15_000, 25_000]);
});
