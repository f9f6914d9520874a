// `node dist/test/sim/calibrate.js` (as root, under the heavy-job lock): the real fleet bench's mesh run
// (bench/fanout.ts) next to the simulation of the same fleet, per link rate. It also prints what the
// calibration (calibration.ts) is read from: gossip delay, finish delay, per-hop lag and CPU per MiB.
// Options: --mbit 25,100 --runs 2 --hosts 8 --layers 24,16,12,8,4 --plan stripes|chain (what meshd runs).
import '../../src/polyfill.js';
import { readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import { meshdLog, meshRun, onFleet } from '../../bench/fanout.js';
import { cleanupOnSignals, runBench } from '../../bench/lib/cleanup.js';
import { buildImage } from '../helpers/oci-image.js';
import { cpuSeconds } from '../helpers/procfs.js';
import { FLEET_BENCH } from './calibration.js';
import { simulateReplication } from './replication-sim.js';

const MiB = 1 << 20;
const say = (line: string) => console.log(line);
/** NaN for no values (one taker has no hop before it). */
const median = (xs: number[]) => (xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]);

interface Observed {
  mbit: number;
  seconds: number;
  ratio: number;
  /** The median and the first taker's time until `replicated`, over S/B: how far apart the hosts finish. */
  p50Ratio: number;
  firstRatio: number;
  /** Push's end to the gossip's arrival, median over takers. */
  gossipMs: number;
  /** Last blob fetched to 'replicated', median over takers. */
  finishMs: number;
  /** The first layer's arrival, one host after the one before it (chain order), median. */
  hopLagMs: number;
  /** Bytes of the blobs after the first over the time they took to arrive, per taker, median and lowest; over B. */
  efficiency: number;
  lowestEfficiency: number;
  /**
   * CPU-s per MiB sent, from the host that only sends (the one pushed to), and per MiB taken: the whole
   * fleet's CPU over the bytes all takers took, less what they sent (every byte taken is sent once).
   */
  sendCpuSecPerMiB: number;
  recvCpuSecPerMiB: number;
  /** Cores the fleet used, on average over the run. */
  fleetCores: number;
  /** What one host's meshd and containerd use idle, measured before the runs. */
  idleCoresPerHost: number;
  /** Cores the machine's other processes (other jobs, this one) used from the push's end until all were done. */
  otherCores: number;
}

/** CPU-seconds the whole machine has been busy. */
async function machineBusySeconds(): Promise<number> {
  const f = (await readFile('/proc/stat', 'utf8')).split('\n')[0].split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal, in clock ticks of 1/100 s
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100;
}

async function observe(mbit: number, hosts: number, layersMiB: number[], runs: number): Promise<Observed[]> {
  const out: Observed[] = [];
  await onFleet({ hosts, layersMiB, rateMbit: mbit }, [], say, async (fleet) => {
    const fleetCpuNow = () => cpuSeconds(fleet.hosts.flatMap((h) => [h.meshdPid, h.containerdPid]));
    const idleFrom = await fleetCpuNow();
    await sleep(5000);
    const idleCoresPerHost = (await fleetCpuNow() - idleFrom) / 5 / hosts;
    for (let run = 0; run < runs; run++) {
      const image = buildImage({ layerSizes: layersMiB.map((m) => m * MiB), tag: `calibrate-${run}` });
      try {
        // The machine's and the fleet's CPU every 250 ms, to take what others used from the push's end on.
        const samples: { at: number; busy: number; fleet: number }[] = [];
        const sample = async () => samples.push({ at: Date.now(), busy: await machineBusySeconds(), fleet: await fleetCpuNow() });
        const sampler = setInterval(() => void sample(), 250);
        const r = await meshRun(fleet, image, say).finally(() => clearInterval(sampler));
        const from = samples.find((x) => x.at >= r.pushed) ?? samples[0];
        const to = [...samples].reverse().find((x) => x.at <= r.pushed + r.seconds * 1000) ?? samples.at(-1)!;
        const otherCores = (to.busy - from.busy - (to.fleet - from.fleet)) / ((to.at - from.at) / 1000);
        const bytes = image.blobs.reduce((n, b) => n + b.size, 0);
        const ideal = (bytes * 8) / (mbit * 1e6);
        const first = image.blobs.reduce((a, b) => (b.size > a.size ? b : a)).digest;
        const perHost = await Promise.all(fleet.hosts.slice(1).map(async (h) => {
          const log = await meshdLog(h);
          const fetched = log.filter((l) => l.msg === 'fetched from the mesh' && image.blobs.some((b) => b.digest === l.digest));
          const at = (pred: (l: (typeof log)[number]) => boolean) => log.find(pred)?.time ?? NaN;
          return {
            name: h.name,
            gossip: at((l) => (l as { event?: { type?: string } }).event?.type === 'image-pushed' && l.time! >= r.pushed - 1000) - r.pushed,
            done: at((l) => l.msg === 'replicated' && l.image?.endsWith(`:${image.tag}`) === true),
            lastFetched: Math.max(...fetched.map((l) => l.time ?? NaN)),
            firstLayer: fetched.find((l) => l.digest === first)?.time ?? NaN,
            // Blobs come one after another on the stream: from the end of the first to the end of the last.
            rate: (bytes - (fetched[0]?.bytes ?? NaN)) / ((Math.max(...fetched.map((l) => l.time ?? NaN)) - (fetched[0]?.time ?? NaN)) / 1000),
          };
        }));
        const doneRatios = perHost.map((h) => (h.done - r.pushed) / 1000 / ideal).sort((a, b) => a - b);
        const efficiencies = perHost.map((h) => h.rate / (mbit * 1e6 / 8));
        const arrivals = perHost.map((h) => h.firstLayer).sort((a, b) => a - b);
        const fleetCpu = Object.values(r.cpuAfterPush).reduce((a, b) => a + b, 0);
        const sendCpuSecPerMiB = (r.cpuAfterPush[fleet.hosts[0].name] - idleCoresPerHost * r.seconds) / (bytes / MiB);
        out.push({
          mbit, seconds: r.seconds, ratio: r.seconds / ideal, p50Ratio: median(doneRatios), firstRatio: doneRatios[0],
          gossipMs: median(perHost.map((h) => h.gossip)),
          finishMs: median(perHost.map((h) => h.done - h.lastFetched)),
          hopLagMs: median(arrivals.slice(1).map((t, i) => t - arrivals[i])),
          efficiency: median(efficiencies), lowestEfficiency: Math.min(...efficiencies),
          // Net of what the hosts would have used idle meanwhile.
          sendCpuSecPerMiB,
          recvCpuSecPerMiB: (fleetCpu - idleCoresPerHost * hosts * r.seconds) / ((hosts - 1) * bytes / MiB) - sendCpuSecPerMiB,
          fleetCores: fleetCpu / r.seconds, idleCoresPerHost, otherCores,
        });
      } finally {
        await rm(image.dir, { recursive: true, force: true });
      }
    }
  });
  return out;
}

async function main(): Promise<number> {
  cleanupOnSignals();
  const o = new Command('calibrate')
    .option('--mbit <list>', 'link rates, Mbit/s', '25,100')
    .option('--runs <n>', 'mesh runs per rate', '2')
    .option('--hosts <n>', 'fleet size', '8')
    .option('--layers <list>', 'layer sizes, MiB', '24,16,12,8,4')
    .option('--plan <plan>', 'the plan meshd runs: stripes, or chain (the pipeline before them)', 'stripes')
    .parse().opts<{ mbit: string; runs: string; hosts: string; layers: string; plan: 'chain' | 'stripes' }>();
  const layersMiB = o.layers.split(',').map(Number);
  const rows: (Observed & { sim: number; simGivenCores: number; simP50GivenCores: number })[] = [];
  const pct = (sim: number, real: number) => `${sim >= real ? '+' : ''}${(100 * (sim / real - 1)).toFixed(0)} %`;
  for (const mbit of o.mbit.split(',').map(Number)) {
    const simulate = (sharedCores: number) => simulateReplication({ nodes: Number(o.hosts), mbit, layersMiB, plan: o.plan, calibration: { ...FLEET_BENCH, sharedCores } });
    const sim = simulate(FLEET_BENCH.sharedCores!).ratio;
    for (const real of await observe(mbit, Number(o.hosts), layersMiB, Number(o.runs))) {
      // The same, with only the cores the machine's other processes left to the fleet.
      const given = simulate(FLEET_BENCH.sharedCores! - real.otherCores);
      const simGivenCores = given.ratio;
      rows.push({ ...real, sim, simGivenCores, simP50GivenCores: given.p50Ratio });
      say(`${mbit} Mbit/s: real ${real.ratio.toFixed(2)} × S/B (${real.seconds.toFixed(1)} s); sim ${sim.toFixed(2)} (${pct(sim, real.ratio)}),`
        + ` ${simGivenCores.toFixed(2)} (${pct(simGivenCores, real.ratio)}) with the ${(FLEET_BENCH.sharedCores! - real.otherCores).toFixed(2)} cores others left`);
      say(`  hosts done from ${real.firstRatio.toFixed(2)} to ${real.ratio.toFixed(2)} × S/B, the median host ${real.p50Ratio.toFixed(2)};`
        + ` simulated, given the cores: from ${given.firstRatio.toFixed(2)}, the median ${given.p50Ratio.toFixed(2)}`);
      say(`  gossip ${real.gossipMs.toFixed(0)} ms, finish ${real.finishMs.toFixed(0)} ms, hop lag ${real.hopLagMs.toFixed(0)} ms,`
        + ` payload ${real.efficiency.toFixed(3)} × B (the slowest taker ${real.lowestEfficiency.toFixed(3)}),`
        + ` CPU-s/MiB send ${real.sendCpuSecPerMiB.toFixed(3)} take ${real.recvCpuSecPerMiB.toFixed(3)}, idle ${real.idleCoresPerHost.toFixed(3)} cores/host; the fleet used ${real.fleetCores.toFixed(2)} cores`);
    }
    const these = rows.filter((r) => r.mbit === mbit);
    const [real, given] = [median(these.map((r) => r.ratio)), median(these.map((r) => r.simGivenCores))];
    say(`${mbit} Mbit/s, median of ${these.length}: real ${real.toFixed(2)}, sim ${sim.toFixed(2)} (${pct(sim, real)}), with the cores others left ${given.toFixed(2)} (${pct(given, real)})`);
  }
  console.log(JSON.stringify({ calibrate: 'layermesh-replication', plan: o.plan, rows }));
  return 0;
}

await runBench(main);
