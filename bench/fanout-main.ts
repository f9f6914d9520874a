// `node dist/bench/fanout-main.js` (as root: network namespaces and tc): the fan-out benchmark (see fanout.ts).
// Knobs (environment): BENCH_FANOUT_HOSTS=8 BENCH_FANOUT_LAYERS_MIB=24,16,12,8,4 BENCH_FANOUT_MBIT=100
//                      BENCH_FANOUT_LOGS=DIR (keep every host's meshd log of the mesh run there)
import '../src/polyfill.js';
import { cpus } from 'node:os';
import { benchFanout } from './fanout.js';
import { cleanupOnSignals, runBench } from './lib/cleanup.js';
import { fixed, table } from './lib/stats.js';

/** All hosts done within this multiple of the ideal S/B (the issue's target, for N = 8). */
const TARGET = 1.5;
/** The data plane over TLS within 15 % of plaintext throughput. */
const TLS_TARGET = 0.85;
const say = (line: string) => console.log(line);

async function main(): Promise<number> {
  cleanupOnSignals();
  const layersMiB = (process.env.BENCH_FANOUT_LAYERS_MIB ?? '24,16,12,8,4').split(',').map(Number);
  const hosts = Number(process.env.BENCH_FANOUT_HOSTS ?? 8);
  const rateMbit = Number(process.env.BENCH_FANOUT_MBIT ?? 100);
  if (layersMiB.some((m) => !(m > 0)) || !(hosts >= 2) || !(rateMbit > 0)) throw new Error('BENCH_FANOUT_* must be positive numbers');
  const r = await benchFanout({ hosts, layersMiB, rateMbit, keepLogsIn: process.env.BENCH_FANOUT_LOGS || undefined }, say);
  const meshRatio = r.meshSeconds / r.idealSeconds;
  const centralRatio = r.centralSeconds / r.idealSeconds;
  const tlsRatio = r.plaintextMeshSeconds / r.meshSeconds;
  say('');
  say(`Fan-out of a ${fixed(r.imageBytes / (1 << 20), 0)} MiB image to ${r.hosts} hosts, every link ${r.rateMbit} Mbit/s each way`);
  say(table([
    ['path', 'seconds until all hosts hold it', '× ideal S/B'],
    ['ideal S/B', fixed(r.idealSeconds, 1), '1.00'],
    ['mesh (push to h1, replication), data plane over TLS', fixed(r.meshSeconds, 1), fixed(meshRatio, 2)],
    ['mesh, every meshd with --peer-plaintext', fixed(r.plaintextMeshSeconds, 1), fixed(r.plaintextMeshSeconds / r.idealSeconds, 2)],
    [`central docker-registry on h1, ${r.hosts - 1} hosts pulling`, fixed(r.centralSeconds, 1), fixed(centralRatio, 2)],
  ]));
  say(`CPU during the mesh run: every host's meshd ${fixed(r.meshCpuSeconds.meshd, 1)} s + containerd ${fixed(r.meshCpuSeconds.containerd, 1)} s, in ${fixed(r.meshSeconds, 1)} s on ${cpus().length} cores`);
  say(`  with --peer-plaintext: meshd ${fixed(r.plaintextMeshCpuSeconds.meshd, 1)} s + containerd ${fixed(r.plaintextMeshCpuSeconds.containerd, 1)} s, in ${fixed(r.plaintextMeshSeconds, 1)} s`);
  say(`TLS throughput = ${fixed(tlsRatio, 2)}× plaintext (plaintext time / TLS time; target ≥ ${TLS_TARGET}): ${tlsRatio >= TLS_TARGET ? 'target met' : 'TARGET MISSED'}`);
  say(`blob copies sent per host in the mesh run: ${Object.entries(r.sentByHost).map(([h, n]) => `${h} ${fixed(n, 1)}`).join(', ')}`);
  say(`mesh / ideal = ${fixed(meshRatio, 2)} (target ≤ ${TARGET}): ${meshRatio <= TARGET ? 'target met' : 'TARGET MISSED'}; mesh is ${fixed(r.centralSeconds / r.meshSeconds, 1)}× faster than the central registry`);
  console.log(JSON.stringify({ bench: 'layermesh-fanout', node: process.version, ...r, meshRatio, centralRatio, tlsRatio, target: TARGET, met: meshRatio <= TARGET }));
  return 0;
}

await runBench(main);
