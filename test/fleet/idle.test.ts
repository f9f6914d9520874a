// An idle 4-host fleet costs next to nothing: the median meshd's CPU over a short window, once the fleet formed a
// full mesh, stays under a bound far above what it uses (~0.4 % of a core, docs/operations.md) and below what one
// timer regression alone costs (prom-client's 10 ms event loop sampling was ~1 %, per-stream pings ~0.4 % here).
// The median, not the worst host: one host's V8 shrinking its heap after start-up may fall into a short window.
// bench/idle.ts measures the same over 5 minutes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuSeconds } from '../helpers/procfs.js';
import { Fleet } from './fleet.js';

const SETTLE_MS = 10_000;
const WINDOW_MS = 20_000;
const MEDIAN_BOUND_PERCENT = 1;

describe('an idle 4-host fleet', () => {
  let fleet: Fleet | undefined;
  beforeAll(async () => {
    fleet = await Fleet.up(4, { waitFor: 'full-mesh' });
  });
  afterAll(async () => {
    await fleet?.down();
  });

  it(`costs each meshd (median) under ${MEDIAN_BOUND_PERCENT} % of a core, and stays a full mesh`, async () => {
    const pids = fleet!.hosts.map((h) => h.meshdPid);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const before = await Promise.all(pids.map((p) => cpuSeconds([p])));
    const started = performance.now();
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const after = await Promise.all(pids.map((p) => cpuSeconds([p])));
    const seconds = (performance.now() - started) / 1000;
    const percent = after.map((a, i) => ((a - before[i]) / seconds) * 100).sort((a, b) => a - b);
    const median = (percent[1] + percent[2]) / 2;
    expect(median, `meshd % of a core, per host: ${percent.map((p) => p.toFixed(2)).join(', ')}`).toBeLessThan(MEDIAN_BOUND_PERCENT);
    await fleet!.waitForMesh({ timeoutMs: 5_000 });
  }, SETTLE_MS + WINDOW_MS + 30_000);
});
