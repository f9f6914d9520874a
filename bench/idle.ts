// Idle cost: an N-host fleet with nothing to do, once every meshd sees every other and a settling pause has
// passed, each meshd's CPU over a window, against references measured over the same window: the hosts'
// containerd, and a Node.js process that does nothing but a 1 s timer (what any idle Node.js daemon costs).
// Also how often each meshd's main thread was woken (each wake costs CPU of its own).
import { Fleet } from '../test/fleet/index.js';
import { cpuSeconds, mainThreadWakes } from '../test/helpers/procfs.js';
import { onCleanup } from './lib/cleanup.js';

export interface IdleOptions {
  hosts: number;
  /** Pause after the fleet formed a full mesh, before the window opens (joins, first republish, DHT refresh). */
  settleSeconds: number;
  windowSeconds: number;
  meshdArgs: string[];
}

export interface IdleReport {
  hosts: number;
  windowSeconds: number;
  /** Per host (h1 first), % of one core over the window. */
  meshdPercent: number[];
  containerdPercent: number[];
  /** The bare Node.js reference (in h1's namespace). */
  nodePercent: number;
  /** Per host, the meshd main thread's wakes per second over the window; then the reference's. */
  meshdWakesPerSecond: number[];
  nodeWakesPerSecond: number;
}

const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));

export async function benchIdle(opts: IdleOptions, say: (l: string) => void): Promise<IdleReport> {
  say(`bringing up a ${opts.hosts}-host fleet${opts.meshdArgs.length ? `, meshd ${opts.meshdArgs.join(' ')}` : ''}…`);
  const fleet = await Fleet.up(opts.hosts, { waitFor: 'full-mesh', meshdArgs: opts.meshdArgs });
  const down = onCleanup('idle fleet', () => fleet.down());
  try {
    const reference = fleet.host(1).spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    say(`full mesh; settling for ${opts.settleSeconds} s…`);
    await sleep(opts.settleSeconds);
    const sample = () => Promise.all([
      ...fleet.hosts.map((h) => cpuSeconds([h.meshdPid])),
      ...fleet.hosts.map((h) => cpuSeconds([h.containerdPid])),
      cpuSeconds([reference.pid]),
      ...fleet.hosts.map((h) => mainThreadWakes(h.meshdPid)),
      mainThreadWakes(reference.pid),
    ]);
    const before = await sample();
    const started = performance.now();
    say(`measuring CPU for ${opts.windowSeconds} s…`);
    await sleep(opts.windowSeconds);
    const after = await sample();
    const seconds = (performance.now() - started) / 1000;
    // Still a full mesh at the end: an idle fleet that fell apart would look cheap.
    await fleet.waitForMesh({ timeoutMs: 5_000 });
    // CPU-seconds and wakes alike, per second of the window.
    const rates = after.map((a, i) => (a - before[i]) / seconds);
    const n = fleet.hosts.length;
    const percent = (from: number, to: number) => rates.slice(from, to).map((r) => r * 100);
    return {
      hosts: n, windowSeconds: seconds, meshdPercent: percent(0, n), containerdPercent: percent(n, 2 * n), nodePercent: rates[2 * n] * 100,
      meshdWakesPerSecond: rates.slice(2 * n + 1, 3 * n + 1), nodeWakesPerSecond: rates[3 * n + 1],
    };
  } finally {
    await down();
  }
}
