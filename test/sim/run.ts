// `npm run sim` (or `npm run sim -- dht`): the in-process DHT simulation at several mesh sizes, configured by
// SIM_NODES, SIM_KEYS, SIM_LOOKUPS. `npm run sim -- replication --nodes N ...`: the replication simulation
// (replication-sim.ts); its last line is one JSON object. `npm run sim -- views --nodes N --missing PCT`: how the
// plans of takers whose views differ agree (views.ts), from their own views and from the node pushed to's order.
import { Command, InvalidArgumentError } from 'commander';
import { FLEET_BENCH, HOSTS } from './calibration.js';
import { simulateReplication } from './replication-sim.js';
import { planViews } from './views.js';

const number = (what: string, min = 0) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${what} must be a number >= ${min}`);
  return n;
};

async function dht(): Promise<void> {
  const { simulate } = await import('./mesh-sim.js');
  const sizes = (process.env.SIM_NODES ?? '10,50,100').split(',').map(Number);
  const keys = Number(process.env.SIM_KEYS ?? 2000);
  const lookups = Number(process.env.SIM_LOOKUPS ?? 300);
  const rows = [];
  for (const nodes of sizes) {
    const f = await simulate({ nodes, keys, lookups });
    rows.push(f);
    console.log(`${String(nodes).padStart(4)} nodes  ${keys} keys announced in ${f.announceWallMs} ms (process CPU ${f.announceCpuMs} ms)  `
      + `lookups ${f.found}/${f.lookups} found, p50 ${f.lookupP50Ms} ms, p99 ${f.lookupP99Ms} ms`);
  }
  console.log(JSON.stringify({ sim: 'layermesh-mesh', rows }));
}

interface ReplicationFlags {
  nodes: number; mbit: number; size?: number; layers: string; deaths: number; missing: number; seed: number;
  plan: 'stripes' | 'chain'; detectMs: number; dtMs: number; fleetBench: boolean;
}

function replication(o: ReplicationFlags): void {
  let layersMiB = o.layers.split(',').map(Number);
  if (layersMiB.some((m) => !(m > 0))) throw new InvalidArgumentError('--layers must be sizes in MiB, comma-separated');
  // --size scales the layers' proportions to that total.
  if (o.size !== undefined) {
    const total = layersMiB.reduce((a, b) => a + b, 0);
    layersMiB = layersMiB.map((m) => (m * o.size!) / total);
  }
  const started = performance.now();
  const r = simulateReplication({
    nodes: o.nodes, mbit: o.mbit, layersMiB, deathsPct: o.deaths, missingPct: o.missing, seed: o.seed, plan: o.plan, detectMs: o.detectMs, dtMs: o.dtMs,
    calibration: o.fleetBench ? FLEET_BENCH : HOSTS,
  });
  const simSeconds = (performance.now() - started) / 1000;
  console.log(`${r.nodes} hosts, ${r.sizeMiB.toFixed(0)} MiB in ${layersMiB.length} layers, ${r.mbit} Mbit/s, ${r.stripes} stripes: `
    + `all ${r.done}/${r.live} live takers done at ${r.seconds.toFixed(2)} s = ${r.ratio.toFixed(2)} × S/B (median ${r.p50Ratio.toFixed(2)}), `
    + `${r.deaths} died; simulated in ${simSeconds.toFixed(1)} s`);
  console.log(JSON.stringify({ sim: 'layermesh-replication', plan: o.plan, ...r, simSeconds }));
}

function views({ nodes, missing, seed }: { nodes: number; missing: number; seed: number }): void {
  const rows = (['own view', 'pushed-to'] as const).map((by) => planViews(nodes, missing, by, seed));
  for (const r of rows) {
    console.log(`${r.nodes} hosts, views missing ${r.missingPct} %, planned from ${r.plannedBy}: of ${r.streams} streams ${r.inCycles} in cycles, `
      + `${r.unknownFeeders} from a feeder not known; ${r.overloaded} takers asked for more than ${r.stripes} streams (at most ${r.maxStreams}); `
      + `the node pushed to sends ${r.pushedToStreams}`);
  }
  console.log(JSON.stringify({ sim: 'layermesh-views', rows }));
}

const program = new Command('sim').description('LayerMesh simulations');
program.command('dht', { isDefault: true }).description('the in-process DHT mesh (SIM_NODES, SIM_KEYS, SIM_LOOKUPS)').action(dht);
program.command('replication').description('replicating one pushed image over the fleet (replication-sim.ts)')
  .requiredOption('--nodes <n>', 'hosts, the node pushed to included', number('--nodes', 2))
  .option('--mbit <b>', 'every host link, each direction, Mbit/s', number('--mbit'), 100)
  .option('--size <mib>', 'image size in MiB (the layers keep their proportions)', number('--size'))
  .option('--layers <list>', 'layer sizes in MiB, comma-separated', '24,16,12,8,4')
  .option('--deaths <pct>', 'percent of takers that die mid-way', number('--deaths'), 0)
  .option('--missing <pct>', 'percent of the takers each node does not know (all plan on the list the node pushed to sent)', number('--missing'), 0)
  .option('--seed <s>', 'random seed (order, victims, fallbacks)', number('--seed'), 1)
  .option('--plan <plan>', 'stripes (replication-plan.ts) or chain (one pipeline, the replicator before stripes)', 'stripes')
  .option('--detect-ms <ms>', 'from a feeder\'s death until its children ask elsewhere', number('--detect-ms'), 1000)
  .option('--dt-ms <ms>', 'time step', number('--dt-ms'), 5)
  .option('--fleet-bench', 'all hosts on one 2-core machine, as in the fleet bench (else a machine each)', false)
  .action(replication);
program.command('views').description('plans of takers whose views of the mesh differ (views.ts)')
  .requiredOption('--nodes <n>', 'hosts, the node pushed to included', number('--nodes', 2))
  .option('--missing <pct>', 'percent of the other takers each node does not know', number('--missing'), 1)
  .option('--seed <s>', 'random seed', number('--seed'), 1)
  .action(views);
await program.parseAsync();
process.exit(0);
