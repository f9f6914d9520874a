#!/usr/bin/env node
// `npm run fleet -- up N` / `down` / `status`: a fleet on this machine for trying LayerMesh by hand.
// `up` leaves the fleet running and exits; its state stays in <STATE_ROOT>/<run>/fleet.json for `down`.
import { Command, InvalidArgumentError } from 'commander';
import { table } from '../../src/cli/table.js';
import { hasCommand } from '../helpers/apt.js';
import { leftovers, removeLeftoverRuns, removeRun } from './cleanup.js';
import { Fleet } from './fleet.js';
import { builtEntryPoints, MAX_HOSTS, STATE_ROOT } from './layout.js';
import { isAlive } from '../helpers/procfs.js';
import type { ShapeSpec } from './shaping.js';
import { listRuns, ownerAlive, type FleetState } from './state.js';

const number = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${what} must be a number >= 0`);
  return n;
};

const program = new Command('fleet').description(`N LayerMesh hosts on this machine (network namespaces; state in ${STATE_ROOT})`);

program
  .command('up')
  .argument('<n>', `number of hosts (1-${MAX_HOSTS})`, (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > MAX_HOSTS) throw new InvalidArgumentError(`between 1 and ${MAX_HOSTS}`);
    return n;
  })
  .option('--shape-mbit <mbit>', 'limit every host link to this bandwidth, each direction', number('--shape-mbit'))
  .option('--delay-ms <ms>', 'add this one-way latency to every host link (needs netem in the kernel)', number('--delay-ms'))
  .option('--loss-pct <pct>', 'drop this share of packets on every host link, each direction', number('--loss-pct'))
  .option('--record-ttl <duration>', 'meshd --record-ttl')
  .option('--log-level <level>', 'meshd --log-level', 'info')
  .description('bring up N hosts, print how to use them, and leave them running')
  .action(async (n: number, o: { shapeMbit?: number; delayMs?: number; lossPct?: number; recordTtl?: string; logLevel: string }) => {
    const shape: ShapeSpec = { rateMbit: o.shapeMbit, delayMs: o.delayMs, lossPct: o.lossPct };
    const started = Date.now();
    const fleet = await Fleet.create(n, { shape, recordTtl: o.recordTtl, logLevel: o.logLevel });
    // Ctrl-C or SIGTERM while hosts come up: take down what exists, then leave.
    const onSignal = (sig: NodeJS.Signals) => {
      console.error(`\n${sig}: taking fleet ${fleet.run} down…`);
      fleet.down().then(
        () => process.exit(sig === 'SIGINT' ? 130 : 143),
        (err: Error) => {
          console.error(err.message);
          process.exit(1);
        },
      );
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    console.error(`fleet ${fleet.run}: bringing up ${n} host(s) on ${fleet.cidr}…`);
    await fleet.start(n);
    await fleet.detach();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await printFleet(fleet, Date.now() - started);
    process.exit(0); // the daemons are detached; nothing here should keep this process alive
  });

program
  .command('down')
  .option('--run <id>', 'only this run (default: every fleet left by `fleet up`, and leftovers of crashed runs)')
  .description('stop and remove fleets: processes, namespaces, links, mounts, files')
  .action(async (o: { run?: string }) => {
    const runs = o.run ? [o.run] : (await listRuns()).filter((s) => s.detached).map((s) => s.run);
    for (const run of runs) {
      await removeRun(run);
      console.log(`fleet ${run} removed`);
    }
    for (const run of await removeLeftoverRuns()) console.log(`fleet ${run} (leftover of a crashed run) removed`);
    if (!o.run) {
      const live = (await listRuns()).filter((s) => !s.detached);
      for (const s of live) console.log(`fleet ${s.run} kept: its owner (pid ${s.owner.pid}, a test?) still runs; \`fleet down --run ${s.run}\` to force`);
    }
  });

program
  .command('status')
  .description('list fleets on this machine')
  .action(async () => {
    const runs = await listRuns();
    if (runs.length === 0) return console.log('no fleet');
    for (const s of runs) {
      const kind = s.detached ? 'left running by `fleet up`' : (await ownerAlive(s)) ? `owned by pid ${s.owner.pid}` : 'leftover of a crashed run';
      if (s.subnet < 0) {
        console.log(`fleet ${s.run}: unreadable marker (${STATE_ROOT}/${s.run}/fleet.json); \`npm run fleet -- down\` removes it`);
        continue;
      }
      console.log(`fleet ${s.run}: ${s.hosts.length} host(s) on 10.231.${s.subnet}.0/24, ${kind}, since ${s.createdAt}`);
      console.log(indent(table(['HOST', 'NAMESPACE', 'ADDRESS', 'CONTAINERD', 'MESHD', 'PEER ID'], await Promise.all(s.hosts.map(async (h) => [
        h.name, h.ns, h.address, await pidState(h.containerdPid), await pidState(h.meshdPid), h.peerId ?? '-',
      ])))));
      const left = s.detached ? [] : await leftovers(s.run);
      if (left.length && !(await ownerAlive(s))) console.log(indent(`${left.length} thing(s) to remove: \`npm run fleet -- down\``));
    }
  });

async function printFleet(fleet: Fleet, ms: number): Promise<void> {
  const h1 = fleet.host(1);
  const meshctl = (await hasCommand('meshctl')) ? 'meshctl' : `node ${builtEntryPoints().meshctl}`;
  const rows = await Promise.all(fleet.hosts.map(async (h) => {
    const mem = await h.memory();
    return [h.name, h.ns, h.address, h.peerId, `${Math.round(mem.containerdKb / 1024)}+${Math.round(mem.meshdKb / 1024)} MiB`];
  }));
  const state: FleetState = fleet.state();
  console.log(`fleet ${fleet.run} is up: ${fleet.hosts.length} host(s) on ${fleet.cidr} in ${(ms / 1000).toFixed(1)} s (the root namespace is ${fleet.bridgeAddress})`);
  console.log(table(['HOST', 'NAMESPACE', 'ADDRESS', 'PEER ID', 'RSS containerd+meshd'], rows));
  console.log(`
Each host runs containerd and meshd in its namespace; inside it, 127.0.0.1:5000 is that host's meshd.
  ip netns exec ${h1.ns} ${meshctl} peers
  ip netns exec ${h1.ns} skopeo copy --insecure-policy oci:<layout>:<tag> docker://127.0.0.1:5000/app:1 --dest-tls-verify=false
  ip netns exec ${h1.ns} ${meshctl} who-has docker.io/library/app:1
  ctr --address ${h1.containerdSocket} images ls
  ip netns exec ${h1.ns} bash        # a shell on ${h1.name}
Logs: ${h1.meshdLog} (and h2…). Swarm key: ${state.swarmKeyFile}. State: ${STATE_ROOT}/${fleet.run}/fleet.json
Remove it: npm run fleet -- down`);
}

async function pidState(pid: number | undefined): Promise<string> {
  if (!pid) return '-';
  return (await isAlive(pid)) ? `${pid}` : `${pid} (dead)`;
}

function indent(text: string): string {
  return text.split('\n').map((l) => `  ${l}`).join('\n');
}

program.parseAsync().catch((err: Error) => {
  console.error(`fleet: ${err.message}`);
  process.exit(1);
});
