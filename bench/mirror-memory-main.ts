// `node dist/bench/mirror-memory-main.js` (after `npm run build`): the memory benchmark (see mirror-memory.ts).
// Targets (issue 18): meshd B's peak RSS ≤ 150 MiB while it streams the blob; RSS after the last pull at most
// 10 MiB above RSS after the first 10 % of pulls (flat: a leak would grow with every pull).
// Exits non-zero on errors, not on a missed target.
// Knobs (environment): BENCH_MEMORY_BLOB_MIB=1024 BENCH_MEMORY_PULLS=100 BENCH_MEMORY_LAYERS_KIB=4096,1024,256
//                      BENCH_MESHD_MAIN=/path/to/dist/src/node/main.js (another meshd build, for A/B)
//                      BENCH_MESHD_NODE_FLAGS='--max-semi-space-size=1' (node options of every meshd, for A/B)
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePackages } from '../test/helpers/apt.js';
import { cleanupOnSignals, onCleanup, runBench } from './lib/cleanup.js';
import { MESHD_MAIN } from './lib/servers.js';
import { MiB, envInt, fixed, table } from './lib/stats.js';
import { benchMirrorMemory } from './mirror-memory.js';

const PEAK_TARGET_MIB = 150;
const GROWTH_TARGET_MIB = 10;
const say = (line: string) => console.log(line);
const mib = (kb: number) => kb / 1024;

async function main(): Promise<number> {
  cleanupOnSignals();
  if (!existsSync(MESHD_MAIN)) throw new Error(`${MESHD_MAIN} is missing: run \`npm run build\``);
  say(`meshd: ${MESHD_MAIN}`);
  const layerSizes = (process.env.BENCH_MEMORY_LAYERS_KIB ?? '4096,1024,256').split(',').map((s) => Number(s) * 1024);
  if (layerSizes.some((s) => !Number.isInteger(s) || s <= 0)) throw new Error('BENCH_MEMORY_LAYERS_KIB must be a comma-separated list of positive KiB counts');
  await ensurePackages({ containerd: 'containerd', ctr: 'containerd', skopeo: 'skopeo', 'docker-registry': 'docker-registry', curl: 'curl', gzip: 'gzip', tar: 'tar' });
  const work = await mkdtemp(join(tmpdir(), 'lm-bench-'));
  onCleanup(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));

  const r = await benchMirrorMemory({ work, blobBytes: envInt('BENCH_MEMORY_BLOB_MIB', 1024) * MiB, pulls: envInt('BENCH_MEMORY_PULLS', 100), layerSizes }, say);

  const peakMet = mib(r.b.peakKb) <= PEAK_TARGET_MIB;
  const first = r.pulls.checkpoints[0];
  const last = r.pulls.checkpoints.at(-1)!;
  const growthMib = mib(last.kb - first.kb);
  const growthMet = growthMib <= GROWTH_TARGET_MIB;
  const mbps = (seconds: number) => fixed(r.blobBytes / seconds / 1e6, 0);
  say('');
  say(`Memory (VmRSS, MiB; sampled every 100 ms): a ${fixed(r.blobBytes / MiB, 0)} MiB blob, curl -o /dev/null`);
  say(table([
    ['process', 'idle', 'peak', 'after', 'MB/s', 'CPU s'],
    ['meshd B, streaming from peer A, then storing its copy', fixed(mib(r.b.idleKb)), fixed(mib(r.b.peakKb)), fixed(mib(r.b.afterKb)), mbps(r.transferSeconds), fixed(r.b.cpuSeconds, 2)],
    ['meshd A, serving it from containerd', '', fixed(mib(r.aPeakKb)), '', '', ''],
    ['docker-registry (Go), serving it from disk', fixed(mib(r.registry.idleKb)), fixed(mib(r.registry.peakKb)), '', mbps(r.registry.seconds), ''],
  ]));
  say('');
  say(`Pulls through meshd B: ${r.pulls.count} distinct images of ${fixed(r.pulls.imageBytes / MiB, 2)} MiB (ctr content fetch), meshd B after a settle`);
  say(table([['after pull', 'MiB'], ...r.pulls.checkpoints.map((c) => [String(c.pull), fixed(mib(c.kb))])]));
  say(`  unsettled after each pull: min ${fixed(mib(Math.min(...r.pulls.afterEachKb)))}, max ${fixed(mib(Math.max(...r.pulls.afterEachKb)))} MiB`);
  say('');
  say(`meshd B peak = ${fixed(mib(r.b.peakKb))} MiB (target ≤ ${PEAK_TARGET_MIB}): ${peakMet ? 'target met' : 'TARGET MISSED'}`);
  say(`growth from pull ${first.pull} to ${last.pull} = ${fixed(growthMib)} MiB (target ≤ ${GROWTH_TARGET_MIB}): ${growthMet ? 'target met' : 'TARGET MISSED'}`);
  const m1 = (kb: number) => Number(mib(kb).toFixed(1));
  console.log(JSON.stringify({
    bench: 'layermesh-memory', node: process.version, meshdNodeFlags: process.env.BENCH_MESHD_NODE_FLAGS ?? '', blobBytes: r.blobBytes,
    meshdB: { idleMiB: m1(r.b.idleKb), peakMiB: m1(r.b.peakKb), afterMiB: m1(r.b.afterKb), seconds: Number(r.transferSeconds.toFixed(2)), cpuSeconds: Number(r.b.cpuSeconds.toFixed(2)) },
    meshdA: { peakMiB: m1(r.aPeakKb) },
    registry: { idleMiB: m1(r.registry.idleKb), peakMiB: m1(r.registry.peakKb), seconds: Number(r.registry.seconds.toFixed(2)) },
    pulls: { count: r.pulls.count, imageBytes: r.pulls.imageBytes, checkpointsMiB: Object.fromEntries(r.pulls.checkpoints.map((c) => [c.pull, m1(c.kb)])), afterEachMiB: r.pulls.afterEachKb.map(m1) },
    targets: { peakMiB: PEAK_TARGET_MIB, growthMiB: GROWTH_TARGET_MIB },
    met: { peak: peakMet, growth: growthMet },
  }));
  return 0;
}

await runBench(main);
