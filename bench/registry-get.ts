// Blob GET throughput: one large random blob pushed into every registry, then fetched by curl
// into /dev/null, rounds alternating between registries so that no one profits from a quiet moment.
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { curlDigest, curlGet } from './lib/curl.js';
import { pushBlob } from './lib/http.js';
import { cpuSeconds } from '../test/helpers/procfs.js';
import { MB, median } from './lib/stats.js';
import type { Server } from './lib/servers.js';

export interface GetResult {
  name: string;
  /** MB/s (10^6 bytes) of each measured round. */
  rounds: number[];
  medianMBps: number;
  /** Server-side CPU seconds per GB served, median over rounds. */
  cpuSecondsPerGB: number;
  pushedWith: string;
}

/** Writes `size` random bytes to `path` and returns their sha256 digest. */
export async function writeRandomBlob(path: string, size: number): Promise<string> {
  const file = await open(path, 'w');
  const chunk = Buffer.alloc(8 << 20);
  try {
    for (let written = 0; written < size; ) {
      const n = Math.min(chunk.length, size - written);
      randomFillSync(chunk, 0, n);
      await file.write(chunk, 0, n);
      written += n;
    }
  } finally {
    await file.close();
  }
  const hash = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(c as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

export async function benchGet(servers: Server[], blob: { file: string; size: number; digest: string }, opts: { rounds: number; warmups: number; repo: string }, say: (line: string) => void): Promise<GetResult[]> {
  const pushedWith: string[] = [];
  for (const s of servers) {
    pushedWith.push(await pushBlob(s.url, opts.repo, blob.file, blob.size, blob.digest));
    // Warm-up rounds also prove the bytes are right.
    const got = await curlDigest(`${s.url}/v2/${opts.repo}/blobs/${blob.digest}`);
    if (got !== blob.digest) throw new Error(`${s.name} served ${got} for ${blob.digest}`);
  }
  const speeds = servers.map((): number[] => []);
  const cpus = servers.map((): number[] => []);
  for (let round = -opts.warmups + 1; round <= opts.rounds; round++) {
    // Alternate the order each round.
    const order = servers.map((_, i) => i);
    if (round % 2 === 0) order.reverse();
    for (const i of order) {
      const s = servers[i];
      const cpuBefore = await cpuSeconds(s.pids);
      const d = await curlGet(`${s.url}/v2/${opts.repo}/blobs/${blob.digest}`);
      const cpu = (await cpuSeconds(s.pids)) - cpuBefore;
      if (d.status !== 200 || d.bytes !== blob.size) throw new Error(`${s.name}: GET answered ${d.status} with ${d.bytes} of ${blob.size} bytes`);
      if (round <= 0) continue; // warm-up
      speeds[i].push(d.bytesPerSecond / MB);
      cpus[i].push(cpu / (blob.size / 1e9));
      say(`  GET round ${round}/${opts.rounds} ${s.name.padEnd(24)} ${(d.bytesPerSecond / MB).toFixed(0).padStart(6)} MB/s  (server CPU ${cpu.toFixed(2)} s)`);
    }
  }
  return servers.map((s, i) => ({
    name: s.name,
    rounds: speeds[i],
    medianMBps: median(speeds[i]),
    cpuSecondsPerGB: median(cpus[i]),
    pushedWith: pushedWith[i],
  }));
}
