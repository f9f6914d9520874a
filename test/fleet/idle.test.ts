// An idle 4-host fleet costs next to nothing: each meshd's CPU, once the fleet formed a full mesh, stays under a
// bound far above what it uses (~0.4 % of a core, docs/operations.md) and below what one timer regression alone
// costs (prom-client's 10 ms event loop sampling was ~1 %, per-stream pings ~0.4 % here).
// A host's figure is its quietest of three windows: V8's memory reducer runs three full collections 20–40 s after
// start (about 0.25 CPU-s once), which may fall into any one window; a steady cost shows in all of them. The median
// host, not the worst, so that one host's late start-up work does not decide it either.
// Each wake of a process costs CPU of its own (0.2–0.4 ms here, docs/operations.md), so the median host's main
// thread may not wake more often than a bound between what meshd needs (about once a second in its quietest
// window) and what it did with gossipsub's heartbeat each second (2.4; about 4 when every library timer ran
// each second at its own moment).
// bench/idle.ts measures the same over 5 minutes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { median } from '../../bench/lib/stats.js';
import { cpuSeconds, mainThreadWakes } from '../helpers/procfs.js';
import { Fleet } from './fleet.js';

const SETTLE_MS = 10_000;
const WINDOW_MS = 10_000;
const WINDOWS = 3;
const MEDIAN_BOUND_PERCENT = 1;
const MEDIAN_WAKES_PER_SECOND = 2;

describe('an idle 4-host fleet', () => {
  let fleet: Fleet | undefined;
  beforeAll(async () => {
    fleet = await Fleet.up(4, { waitFor: 'full-mesh' });
  });
  afterAll(async () => {
    await fleet?.down();
  });

  it(`costs each meshd (median) under ${MEDIAN_BOUND_PERCENT} % of a core and ${MEDIAN_WAKES_PER_SECOND} wakes a second, and stays a full mesh`, async () => {
    const pids = fleet!.hosts.map((h) => h.meshdPid);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const quietest = pids.map(() => Infinity);
    const fewestWakes = pids.map(() => Infinity);
    const windows: string[] = [];
    const sample = () => Promise.all(pids.map(async (p) => ({ cpu: await cpuSeconds([p]), wakes: await mainThreadWakes(p) })));
    let before = await sample();
    for (let w = 0; w < WINDOWS; w++) {
      const started = performance.now();
      await new Promise((r) => setTimeout(r, WINDOW_MS));
      const after = await sample();
      const seconds = (performance.now() - started) / 1000;
      const percent = after.map((a, i) => ((a.cpu - before[i].cpu) / seconds) * 100);
      const wakes = after.map((a, i) => (a.wakes - before[i].wakes) / seconds);
      percent.forEach((p, i) => (quietest[i] = Math.min(quietest[i], p)));
      wakes.forEach((n, i) => (fewestWakes[i] = Math.min(fewestWakes[i], n)));
      windows.push(percent.map((p, i) => `${p.toFixed(2)} % ${wakes[i].toFixed(1)}/s`).join(', '));
      before = after;
    }
    const seen = `meshd per host, window by window: ${windows.join(' | ')}`;
    expect(median(quietest), seen).toBeLessThan(MEDIAN_BOUND_PERCENT);
    expect(median(fewestWakes), seen).toBeLessThan(MEDIAN_WAKES_PER_SECOND);
    await fleet!.waitForMesh({ timeoutMs: 5_000 });
  }, SETTLE_MS + WINDOWS * WINDOW_MS + 30_000);
});
