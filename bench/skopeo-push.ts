// Push time: `skopeo copy` of a multi-layer OCI layout into each registry, a fresh registry (and store)
// for every round so that nothing is already there; rounds alternate between registries. One target may
// bring the image in by other means (containerd's own client, the floor of any registry on containerd).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MANIFEST_ACCEPT, expectStatus } from './lib/http.js';
import { cpuSeconds } from '../test/helpers/procfs.js';
import type { BuiltImage } from '../test/helpers/oci-image.js';
import { median } from './lib/stats.js';
import { startPrivateContainerd, type Server } from './lib/servers.js';

const exec = promisify(execFile);

export interface PushTarget {
  name: string;
  start(): Promise<Server>;
  /** How the image gets in; `skopeo copy` and a check that the registry has its manifest unless said otherwise. */
  push?(image: BuiltImage, server: Server): Promise<void>;
}

/**
 * Every blob of the image written into a fresh private containerd by `ctr content ingest` (containerd's Go client),
 * one after another as skopeo sends them: what containerd itself takes for the bytes, without any HTTP in front.
 */
export function ctrIngestTarget(name: string): PushTarget {
  let socket = '';
  return {
    name,
    start: async () => {
      const containerd = await startPrivateContainerd();
      socket = containerd.socket;
      return { name, url: '', host: '', pids: containerd.pids, stop: () => containerd.stop() };
    },
    // ctr fails unless containerd committed the blob under the expected digest and size. (Without a lease, its
    // garbage collection may drop the blobs afterwards: nothing here reads them back.)
    push: async (image) => {
      for (const { digest, size } of image.blobs) {
        await exec('sh', ['-c', 'exec ctr -a "$0" -n bench content ingest --expected-digest "$1" --expected-size "$2" "$1" < "$3"',
          socket, digest, String(size), join(image.dir, 'blobs', 'sha256', digest.slice('sha256:'.length))]);
      }
    },
  };
}

export interface PushResult {
  name: string;
  /** Wall seconds of each round. */
  rounds: number[];
  medianSeconds: number;
  /** Server-side CPU seconds (registry + its store's processes), median over rounds. */
  cpuSeconds: number;
}

export async function skopeoCopy(layoutDir: string, tag: string, host: string, repo: string): Promise<void> {
  try {
    await exec('skopeo', ['--insecure-policy', 'copy', '--quiet', `oci:${layoutDir}:${tag}`, `docker://${host}/${repo}:${tag}`, '--dest-tls-verify=false'], {
      maxBuffer: 16 << 20,
      timeout: 300_000,
    });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`skopeo copy to ${host} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

export async function benchPush(targets: PushTarget[], image: BuiltImage, opts: { rounds: number; repo: string }, say: (line: string) => void): Promise<PushResult[]> {
  const times = targets.map((): number[] => []);
  const cpus = targets.map((): number[] => []);
  for (let round = 1; round <= opts.rounds; round++) {
    const order = targets.map((_, i) => i);
    if (round % 2 === 0) order.reverse();
    for (const i of order) {
      const server = await targets[i].start();
      try {
        const cpuBefore = await cpuSeconds(server.pids);
        const t0 = process.hrtime.bigint();
        const push = targets[i].push ?? ((img: BuiltImage, s: Server) => skopeoCopy(img.dir, img.tag, s.host, opts.repo));
        await push(image, server);
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const cpu = (await cpuSeconds(server.pids)) - cpuBefore;
        if (!targets[i].push) await expectStatus('HEAD', `${server.url}/v2/${opts.repo}/manifests/${image.digest}`, 200, { accept: MANIFEST_ACCEPT });
        times[i].push(seconds);
        cpus[i].push(cpu);
        say(`  push round ${round}/${opts.rounds} ${targets[i].name.padEnd(24)} ${seconds.toFixed(2).padStart(6)} s  (server CPU ${cpu.toFixed(2)} s)`);
      } finally {
        await server.stop();
      }
    }
  }
  return targets.map((t, i) => ({ name: t.name, rounds: times[i], medianSeconds: median(times[i]), cpuSeconds: median(cpus[i]) }));
}
