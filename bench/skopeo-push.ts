// Push time: `skopeo copy` of a multi-layer OCI layout into each registry, a fresh registry (and store)
// for every round so that nothing is already there; rounds alternate between registries.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { MANIFEST_ACCEPT, expectStatus } from './lib/http.js';
import { cpuSeconds } from '../test/helpers/procfs.js';
import { median } from './lib/stats.js';
import type { Server } from './lib/servers.js';

const exec = promisify(execFile);

export interface PushTarget {
  name: string;
  start(): Promise<Server>;
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

export async function benchPush(targets: PushTarget[], image: { dir: string; tag: string; digest: string }, opts: { rounds: number; repo: string }, say: (line: string) => void): Promise<PushResult[]> {
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
        await skopeoCopy(image.dir, image.tag, server.host, opts.repo);
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const cpu = (await cpuSeconds(server.pids)) - cpuBefore;
        await expectStatus('HEAD', `${server.url}/v2/${opts.repo}/manifests/${image.digest}`, 200, { accept: MANIFEST_ACCEPT });
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
