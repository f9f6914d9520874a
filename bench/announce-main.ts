// `node dist/bench/announce-main.js`: the announce benchmark on its own (see announce.ts).
// Knobs (environment): BENCH_KEYS=10000 BENCH_SAMPLE=200 BENCH_LOOKUPS=1000 BENCH_MISSES=20 BENCH_BASELINE_KEYS=20
//                      BENCH_PEERS=10,9 (non-announcing nodes per worker process; 50,50,50,49: the 200-node run)
//                      BENCH_ADD_PROVIDER=1 (send standard ADD_PROVIDER messages, not /layermesh/provide/1.0.0)
//                      BENCH_MAX_CONNECTIONS=64 (each node's connection cap)
//                      BENCH_JOINS_PER_SECOND=20 (nodes joining the mesh per second, all processes together)
//                      BENCH_LOOKUP_PROCESSES=all (peer processes looking up at once, each one key at a time)
import '../src/polyfill.js';
import { benchAnnounce, ANNOUNCE_TARGETS } from './announce.js';
import { cleanupOnSignals, runBench } from './lib/cleanup.js';
import { envInt, fixed, table } from './lib/stats.js';

const say = (line: string) => console.log(line);

async function main(): Promise<number> {
  cleanupOnSignals();
  const r = await benchAnnounce({
    keys: envInt('BENCH_KEYS', 10_000, 0),
    sample: envInt('BENCH_SAMPLE', 200, 0),
    lookups: envInt('BENCH_LOOKUPS', 1_000, 0),
    misses: envInt('BENCH_MISSES', 20, 0),
    baselineKeys: envInt('BENCH_BASELINE_KEYS', 20, 0),
    peersPerProcess: (process.env.BENCH_PEERS ?? '10,9').split(',').map(Number),
    joinsPerSecond: envInt('BENCH_JOINS_PER_SECOND', 20, 1),
    lookupProcesses: envInt('BENCH_LOOKUP_PROCESSES', Infinity, 1),
  }, say);
  const t = ANNOUNCE_TARGETS;
  const met = { wall: r.findableSeconds < t.wallSeconds && r.settledSeconds < t.wallSeconds, cpu: r.announcerCpuSeconds < t.cpuSeconds, lookup: r.lookupMs.p50 < t.lookupP50Ms && r.lookupMs.p99 < t.lookupP99Ms, found: r.foundPercent >= t.foundPercent };
  say('');
  const wire = process.env.BENCH_ADD_PROVIDER === '1' ? 'kad-dht ADD_PROVIDER' : '/layermesh/provide/1.0.0';
  say(`Announce ${r.keys} keys on a ${r.nodes}-node mesh in ${r.processes} processes (loopback tcp, swarm key), records sent as ${wire}`);
  say(table([
    ['measure', 'value', 'target'],
    ['mesh formation before announcing (s)', fixed(r.meshFormSeconds, 1), ''],
    ['CPU per node while idle once formed (% of a core)', fixed(r.idleCpuPercentPerNode, 2), ''],
    ['all peers acknowledged (s)', fixed(r.settledSeconds, 2), `< ${t.wallSeconds}`],
    ['sampled keys findable elsewhere (s)', fixed(r.findableSeconds, 2), `< ${t.wallSeconds}`],
    ['announcer CPU (s)', fixed(r.announcerCpuSeconds, 2), `< ${t.cpuSeconds}`],
    ['CPU of the other processes meanwhile (s)', fixed(r.peersCpuSeconds, 2), ''],
    [`lookup p50 (ms, n=${r.lookupMs.count}, ${r.lookupProcesses} processes at once)`, fixed(r.lookupMs.p50, 2), `< ${t.lookupP50Ms}`],
    ['lookup p99 (ms)', fixed(r.lookupMs.p99, 2), `< ${t.lookupP99Ms}`],
    ['lookups that found the provider (%)', fixed(r.foundPercent, 1), `${t.foundPercent}`],
    ['connections per node (min / median / max)', `${r.connsPerNode.min} / ${r.connsPerNode.median} / ${r.connsPerNode.max}`, ''],
    [`absent key lookup p50 (ms, n=${r.missMs.count})`, fixed(r.missMs.p50, 1), ''],
    ...(r.baseline ? [
      [`kad-dht provide() one by one, CPU ms/key (n=${r.baseline.keys})`, fixed(r.baseline.cpuMsPerKey, 1), ''],
      ['kad-dht provide() one by one, wall ms/key', fixed(r.baseline.wallMsPerKey, 1), ''],
    ] : []),
  ]));
  say(`targets: ${Object.entries(met).map(([k, v]) => `${k} ${v ? 'met' : 'MISSED'}`).join(', ')}`);
  console.log(JSON.stringify({ bench: 'layermesh-announce', node: process.version, wire, ...r, targets: t, met }));
  return 0;
}

await runBench(main);
