// Announce benchmark: a mesh on loopback tcp with a swarm key (20 nodes by default; BENCH_PEERS=50,50,50,49 for
// 200). The announcing node runs alone in one process (its CPU is that process's), the others in more, as
// BENCH_PEERS says. Once the mesh has formed, it announces random digests in one batch, and we measure:
//  - wall time until the batch is settled (every peer acknowledged its records) and until each of a sample
//    of keys is findable from non-announcing nodes; CPU seconds of the announcing process (and of the others);
//  - lookup latency (time to the holder) of random announced keys from every non-announcing node in turn, the
//    share of lookups that found the holder, and of absent keys; connections per node at the end;
//  - for reference, kad-dht's own provide() one key at a time on the same mesh.
// BENCH_CPU_PROF=<dir> writes a CPU profile of each worker process.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { generateSwarmKey } from '../src/dht/swarm-key.js';
import { onCleanup } from './lib/cleanup.js';
import { exited, stopChild } from './lib/procs.js';
import type { WorkerRequest } from './announce-worker.js';

export interface AnnounceBenchOptions {
  keys: number; // 10,000
  sample: number; // keys polled until findable: 200
  lookups: number; // 1,000
  misses: number; // absent keys looked up: 20
  baselineKeys: number; // keys provided one by one for reference (0: skip)
  peersPerProcess: number[]; // [10, 9]
  joinsPerSecond: number; // across the mesh: 20
  lookupProcesses: number; // processes looking up at once, each one key at a time: all of them
}

export interface AnnounceBenchResult {
  nodes: number;
  processes: number;
  /** From every node having a peer until the connection count was stable for 3 s. */
  meshFormSeconds: number;
  /** CPU of the non-announcing nodes over IDLE_SECONDS once the mesh formed, per node (percent of a core). */
  idleCpuPercentPerNode: number;
  keys: number;
  settledSeconds: number;
  findableSeconds: number;
  announcerCpuSeconds: number;
  /** CPU of the non-announcing processes from the start of the announce until it settled and the sample was found. */
  peersCpuSeconds: number;
  /** Processes that looked up at once, each one key at a time. */
  lookupProcesses: number;
  /** Lookups that found the provider; the others ended (deadline) without it. */
  lookupMs: { p50: number; p99: number; max: number; count: number };
  foundPercent: number;
  /** Open connections of each node once the lookups are done. */
  connsPerNode: { min: number; median: number; max: number };
  missMs: { p50: number; max: number; count: number };
  baseline?: { keys: number; cpuMsPerKey: number; wallMsPerKey: number };
}

/** Bootstrap peers listed to every node: the first node of each of the first few processes. */
const SEEDS = 4;
const IDLE_SECONDS = 20;

export const ANNOUNCE_TARGETS = { wallSeconds: 30, cpuSeconds: 10, lookupP50Ms: 20, lookupP99Ms: 100, foundPercent: 100 };

class Worker {
  private next = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly events: Array<Record<string, unknown>> = [];

  constructor(readonly name: string, readonly child: ChildProcess) {
    child.on('message', (msg: { id?: number; result?: unknown; error?: string; event?: string }) => {
      if (msg.id === undefined) return void this.events.push(msg);
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error !== undefined) p?.reject(new Error(`${name}: ${msg.error}`));
      else p?.resolve(msg.result);
    });
    child.on('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`${name} exited (${code ?? signal}) with a request pending`));
      this.pending.clear();
    });
  }

  call<T>(req: WorkerRequest): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, req });
    });
  }
}

function startWorker(name: string): Worker {
  const execArgv = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const child = fork(new URL('./announce-worker.js', import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  const stop = onCleanup(`announce worker ${name}`, () => stopChild(child, 5_000));
  child.once('exit', () => void stop());
  return new Worker(name, child);
}

async function connsPerNode(workers: Worker[]): Promise<number[]> {
  return (await Promise.all(workers.map((w) => w.call<{ conns: number[] }>({ cmd: 'conns' })))).flatMap((c) => c.conns);
}

async function peersCpuMs(workers: Worker[]): Promise<number> {
  return (await Promise.all(workers.map((w) => w.call<{ cpuMs: number }>({ cmd: 'cpu' })))).reduce((n, c) => n + c.cpuMs, 0);
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

function pick<T>(xs: T[], n: number): T[] {
  return Array.from({ length: n }, () => xs[Math.floor(Math.random() * xs.length)]);
}

const digest = (): string => `sha256:${randomBytes(32).toString('hex')}`;

export async function benchAnnounce(opts: AnnounceBenchOptions, say: (line: string) => void): Promise<AnnounceBenchResult> {
  const swarmKey = generateSwarmKey();
  const nodes = 1 + opts.peersPerProcess.reduce((a, b) => a + b, 0);
  say(`starting ${nodes} nodes (announcer + ${opts.peersPerProcess.join(' + ')}) on loopback tcp with a swarm key…`);
  const peerWorkers = opts.peersPerProcess.map((_, i) => startWorker(`peers-${i + 1}`));
  const announcer = startWorker('announcer');
  const workers = [announcer, ...peerWorkers];
  try {
    // As a fleet lists a few bootstrap peers: the first node of each process (up to SEEDS), each joining the
    // seeds before it; then every other node, given the whole list, keeps a connection to some of them.
    const seeds: string[] = [];
    for (const [i, w] of peerWorkers.entries()) {
      const seed = await w.call<{ addrs: string[] }>({ cmd: 'start', count: 1, swarmKey, bootstrap: seeds, name: `p${i + 1}` });
      if (i < SEEDS) seeds.push(seed.addrs[0]);
    }
    const [{ ids }] = await Promise.all([
      announcer.call<{ ids: string[] }>({ cmd: 'start', count: 1, swarmKey, bootstrap: seeds, name: 'announcer' }),
      // Joins are spread (joinsPerSecond in all): all these nodes share two cores, where a real fleet's
      // joins each have a host of their own; a node joining costs dozens of handshakes across the mesh.
      ...peerWorkers.map((w, i) => w.call({
        cmd: 'start', count: opts.peersPerProcess[i] - 1, swarmKey, bootstrap: seeds, name: `p${i + 1}`, gapMs: (1_000 * peerWorkers.length) / opts.joinsPerSecond,
      })),
    ]);
    const provider = ids[0];
    // A fleet that has been up a while: kad-dht's self-queries connect the nodes to each other over some
    // seconds (in a fleet under k, everyone to everyone), each connection a Noise handshake and more.
    // Announcing in the middle of that would measure mesh formation too; wait until it is over.
    await Promise.all(workers.map((w) => w.call({ cmd: 'wait-peers', min: 1, timeoutMs: 60_000 })));
    const formed = Date.now();
    say('waiting for the mesh to form (connection count stable for 3 s)…');
    for (let last = -1, stableSince = Date.now(); Date.now() - stableSince < 3_000;) {
      if (Date.now() - formed > 120_000) throw new Error('the mesh did not settle within 120 s');
      await new Promise((r) => setTimeout(r, 500));
      const conns = (await connsPerNode(workers)).reduce((a, b) => a + b, 0);
      if (conns !== last) [last, stableSince] = [conns, Date.now()];
    }
    const meshFormSeconds = (Date.now() - formed) / 1000;
    say(`measuring the formed mesh idle for ${IDLE_SECONDS} s…`);
    const idleBefore = await peersCpuMs(peerWorkers);
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    const idleCpuPercentPerNode = (100 * (await peersCpuMs(peerWorkers) - idleBefore)) / 1000 / IDLE_SECONDS / (nodes - 1);

    const keys = Array.from({ length: opts.keys }, digest);
    say(`announcing ${opts.keys} keys…`);
    const cpuBefore = await peersCpuMs(peerWorkers);
    const announced = announcer.call<{ t0: number; settledAt: number; cpuMs: number }>({ cmd: 'announce', keys });
    const sample = pick(keys, opts.sample);
    const polls = peerWorkers.map((w, i) => w.call<{ at: number }>({
      cmd: 'poll', provider, keys: sample.filter((_, j) => j % peerWorkers.length === i),
    }));
    const [a, ...found] = await Promise.all([announced, ...polls]);
    const findableAt = Math.max(...found.map((f) => f.at));
    const peersCpuSeconds = (await peersCpuMs(peerWorkers) - cpuBefore) / 1000;

    say(`looking up ${opts.lookups} announced keys and ${opts.misses} absent ones from non-announcing nodes…`);
    const lookupKeys = pick(keys, opts.lookups);
    const lookingUp = peerWorkers.slice(0, Math.min(opts.lookupProcesses, peerWorkers.length));
    const lookups = await Promise.all(lookingUp.map((w, i) => w.call<{ ms: number[]; missed: number }>({
      cmd: 'lookups', provider, keys: lookupKeys.filter((_, j) => j % lookingUp.length === i),
    })));
    const ms = lookups.flatMap((l) => l.ms);
    const missed = lookups.reduce((n, l) => n + l.missed, 0);
    const conns = (await connsPerNode(workers)).sort((a, b) => a - b);
    const misses = (await peerWorkers[0].call<{ ms: number[] }>({ cmd: 'misses', keys: Array.from({ length: opts.misses }, digest) })).ms;

    let baseline: AnnounceBenchResult['baseline'];
    if (opts.baselineKeys > 0) {
      say(`reference: kad-dht provide() of ${opts.baselineKeys} keys one by one…`);
      const b = await announcer.call<{ cpuMsPerKey: number; wallMsPerKey: number }>({
        cmd: 'baseline', keys: Array.from({ length: opts.baselineKeys }, digest),
      });
      baseline = { keys: opts.baselineKeys, ...b };
    }
    return {
      nodes,
      processes: workers.length,
      meshFormSeconds,
      idleCpuPercentPerNode,
      keys: opts.keys,
      settledSeconds: (a.settledAt - a.t0) / 1000,
      findableSeconds: (findableAt - a.t0) / 1000,
      announcerCpuSeconds: a.cpuMs / 1000,
      peersCpuSeconds,
      lookupProcesses: lookingUp.length,
      lookupMs: { p50: percentile(ms, 50), p99: percentile(ms, 99), max: Math.max(...ms), count: ms.length },
      foundPercent: (100 * ms.length) / (ms.length + missed),
      connsPerNode: { min: conns[0], median: percentile(conns, 50), max: conns[conns.length - 1] },
      missMs: { p50: percentile(misses, 50), max: Math.max(...misses), count: misses.length },
      baseline,
    };
  } finally {
    await Promise.all(workers.map(async (w) => {
      // A worker exits by itself once its nodes are stopped; signals are for one that does not.
      const timeout = new Promise((r) => setTimeout(r, 10_000).unref());
      await Promise.race([w.call({ cmd: 'stop' }).then(() => exited(w.child)).catch(() => {}), timeout]);
      await stopChild(w.child, 5_000);
    }));
  }
}
