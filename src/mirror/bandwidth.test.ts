import { register } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Bandwidth } from './bandwidth.js';

async function* chunks(count: number, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < count; i++) yield new Uint8Array(size);
}

async function drain(source: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const c of source) n += c.length;
  return n;
}

const MB = 1e6;

describe('Bandwidth', () => {
  it('lets a transfer through at its limit', async () => {
    const bw = new Bandwidth({ download: 4 * MB });
    // The bucket starts full (a tenth of a second); the rest goes at the rate.
    const started = performance.now();
    expect(await drain(bw.throttle('download', chunks(40, 50_000)))).toBe(2 * MB);
    const seconds = (performance.now() - started) / 1000;
    expect(seconds).toBeGreaterThan(0.4);
    expect(seconds).toBeLessThan(1);
  });

  it('keeps replication within its own limit and leaves the rest of the download limit to pulls', async () => {
    const bw = new Bandwidth({ download: 4 * MB, replication: 1 * MB });
    const started = performance.now();
    const timed = async (p: Promise<number>) => (await p, (performance.now() - started) / 1000);
    const [replication, pull] = await Promise.all([
      timed(drain(bw.throttle('replication', chunks(20, 50_000)))), // 1 MB at 1 MB/s
      timed(drain(bw.throttle('download', chunks(60, 50_000)))), // 3 MB at the 3 MB/s left
    ]);
    expect(replication).toBeGreaterThan(0.75);
    expect(pull).toBeGreaterThan(0.75);
    expect(pull).toBeLessThan(2);
  });

  it('reports replication\'s waits under the download limit when replication has none of its own', async () => {
    const waited = async () => Object.fromEntries((await register.getSingleMetric('layermesh_limiter_wait_seconds_total')!.get()).values.map((v) => [v.labels.limit, v.value]));
    const before = await waited();
    await drain(new Bandwidth({ download: 4 * MB }).throttle('replication', chunks(20, 50_000)));
    const after = await waited();
    expect(after.download - (before.download ?? 0)).toBeGreaterThan(0.1);
    expect(after.replication ?? 0).toBe(before.replication ?? 0);
  });

  it('changes limits at run time, and lifts them', async () => {
    const bw = new Bandwidth({ upload: 1 * MB });
    bw.set({ upload: 20 * MB });
    expect(bw.limits).toEqual({ upload: 20 * MB });
    // Bounds at half of what the limit before would take, so that a loaded machine does not fail them.
    let started = performance.now();
    await drain(bw.throttle('upload', chunks(20, 100_000))); // 2 MB: 2 s at the first limit
    expect(performance.now() - started).toBeLessThan(1_000);
    bw.set({});
    started = performance.now();
    await drain(bw.throttle('upload', chunks(40, 1 << 20))); // 42 MB: 2.1 s at the second
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(() => bw.set({ download: -1 })).toThrow(/positive number/);
  });
});
