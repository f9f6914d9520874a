// Writing blobs into containerd: meshd's upload (content.Write over gRPC from Node, fed in 64 KiB pieces as an
// HTTP body arrives; as a push, and with the digest named first as the mirror does) against containerd's own Go
// client, `ctr content ingest`, writing the same sizes into the same private containerd. Prints wall time and CPU
// per GiB of each writer and of containerd, and the ratios.
// `node dist/bench/containerd-write.js` (root: starts a private containerd). Knobs: BENCH_WRITE_MIB=40,
// BENCH_WRITE_ROUNDS=6. The writers alternate; every round writes fresh random bytes.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { ContainerdStore } from '../src/store/containerd/store.js';
import { cpuSeconds } from '../test/helpers/procfs.js';
import { cleanupOnSignals, onCleanup, runBench } from './lib/cleanup.js';
import { startPrivateContainerd } from './lib/servers.js';
import { MiB, envInt, fixed, median, table } from './lib/stats.js';

interface Sample { seconds: number; writerCpu: number; containerdCpu: number }

const sizeMiB = envInt('BENCH_WRITE_MIB', 40);
const rounds = envInt('BENCH_WRITE_ROUNDS', 6);

async function randomFile(dir: string, name: string): Promise<{ path: string; digest: string }> {
  const data = randomBytes(sizeMiB * MiB);
  const path = join(dir, name);
  await writeFile(path, data);
  return { path, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
}

/** CPU seconds of this process (it does nothing else while uploading). */
function ownCpu(): number {
  const u = process.resourceUsage();
  return (u.userCPUTime + u.systemCPUTime) / 1e6;
}

async function main(): Promise<number> {
  cleanupOnSignals();
  const work = await mkdtemp(join(tmpdir(), 'lm-bench-write-'));
  onCleanup(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
  const containerd = await startPrivateContainerd();
  const store = await ContainerdStore.connect({ socket: containerd.socket, namespace: 'bench', logger: pino({ level: 'warn' }) });
  onCleanup('containerd client', () => store.close());

  /** As a push (the digest known at commit), or as the mirror and replication (known before the first byte). */
  const meshdWrite = async ({ path, digest }: { path: string; digest: string }, named: boolean) => {
    const before = ownCpu();
    const upload = await store.beginUpload(named ? digest : undefined);
    await upload.append(createReadStream(path, { highWaterMark: 64 << 10 }));
    await upload.commit({ digest, size: sizeMiB * MiB });
    return ownCpu() - before;
  };
  const writers: Record<string, (file: { path: string; digest: string }, round: number) => Promise<number>> = {
    meshd: (file) => meshdWrite(file, false),
    'meshd, digest named first': (file) => meshdWrite(file, true),
    'ctr content ingest (Go)': async ({ path, digest }, round) => {
      // GNU time reports the CPU of ctr (sh execs into it) on its last line of stderr.
      const { stderr } = await promisify(execFile)('/usr/bin/time', ['-f', '%U %S', 'sh', '-c',
        'exec ctr -a "$0" -n bench content ingest --expected-digest "$1" --expected-size "$2" "$3" < "$4"',
        containerd.socket, digest, String(sizeMiB * MiB), `bench-${round}`, path]);
      const [user, sys] = stderr.trim().split('\n').at(-1)!.split(' ').map(Number);
      return user + sys;
    },
  };
  const samples = new Map(Object.keys(writers).map((name) => [name, [] as Sample[]]));
  for (let round = 1; round <= rounds; round++) {
    for (const [name, write] of Object.entries(writers)) {
      const file = await randomFile(work, `blob-${round}`);
      const ctdBefore = await cpuSeconds(containerd.pids);
      const start = performance.now();
      const writerCpu = await write(file, round);
      const seconds = (performance.now() - start) / 1000;
      const containerdCpu = (await cpuSeconds(containerd.pids)) - ctdBefore;
      samples.get(name)!.push({ seconds, writerCpu, containerdCpu });
      console.log(`  round ${round} ${name.padEnd(24)} ${seconds.toFixed(3)} s  writer CPU ${writerCpu.toFixed(2)} s, containerd ${containerdCpu.toFixed(2)} s`);
      await rm(file.path);
    }
  }
  const gib = (sizeMiB * MiB) / (1 << 30);
  const med = (name: string, key: keyof Sample) => median(samples.get(name)!.map((s) => s[key]));
  console.log(`\nWriting ${sizeMiB} MiB blobs into containerd, median of ${rounds} rounds`);
  console.log(table([
    ['writer', 'seconds', 'MB/s', 'writer CPU s/GiB', 'containerd CPU s/GiB'],
    ...Object.keys(writers).map((name) => [name, fixed(med(name, 'seconds'), 3), fixed((sizeMiB * MiB) / 1e6 / med(name, 'seconds'), 0),
      fixed(med(name, 'writerCpu') / gib, 2), fixed(med(name, 'containerdCpu') / gib, 2)]),
  ]));
  const [ours, named, go] = Object.keys(writers);
  const result = {
    bench: 'containerd-write', blobMiB: sizeMiB, rounds,
    timeRatio: med(ours, 'seconds') / med(go, 'seconds'),
    writerCpuRatio: med(ours, 'writerCpu') / med(go, 'writerCpu'),
    namedTimeRatio: med(named, 'seconds') / med(go, 'seconds'),
    namedContainerdCpuRatio: med(named, 'containerdCpu') / med(ours, 'containerdCpu'),
    writerCpuPerGiB: { meshd: med(ours, 'writerCpu') / gib, named: med(named, 'writerCpu') / gib, ctr: med(go, 'writerCpu') / gib },
  };
  console.log(`meshd's upload takes ${fixed(result.timeRatio, 2)}× the time of ctr's and ${fixed(result.writerCpuRatio, 2)}× its CPU`);
  console.log(`with the digest named first ${fixed(result.namedTimeRatio, 2)}× ctr's time, containerd's CPU ${fixed(result.namedContainerdCpuRatio, 2)}× the push's`);
  console.log(JSON.stringify(result));
  return 0;
}

await runBench(main);
