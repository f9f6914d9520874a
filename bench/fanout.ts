// Fan-out: how long until every host of an N-host fleet holds an image of S bytes pushed to one host,
// every host's link limited to B in each direction (tc, fleet harness), against
//   - the ideal S/B (each host must receive S through its own link), and
//   - N−1 hosts pulling the same-sized image at once from one central Go docker-registry on host 1,
//     whose link has the same limit (about (N−1)·S/B: the registry's link carries every copy).
// Mesh: the image is pushed to host 1's meshd (loopback inside host 1, not through its link), the clock
// starts when the push has finished, and stops at the last host's "replicated" log line. Every host
// keeps its copy in its own containerd; each blob's digest was verified on the way.
// Central: `ctr content fetch` on hosts 2..N at once, from the registry on host 1's address.
// Plaintext: the mesh run again on a second fleet whose meshd all run with --peer-plaintext, to measure
// what TLS on the data plane costs.
import { copyFile, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { buildImage, type BuiltImage } from '../test/helpers/oci-image.js';
import { Fleet, type FleetHost } from '../test/fleet/index.js';
import { waitFor } from '../test/helpers/wait.js';
import { onCleanup } from './lib/cleanup.js';
import { cpuSeconds } from '../test/helpers/procfs.js';
import { writeDockerRegistryConfig } from './lib/servers.js';
import { MiB } from './lib/stats.js';

export interface FanoutOptions {
  hosts: number;
  layersMiB: number[];
  rateMbit: number;
  /** Where to keep every host's meshd log of the mesh run, for a closer look. */
  keepLogsIn?: string;
}

export interface FanoutReport {
  hosts: number;
  imageBytes: number;
  rateMbit: number;
  idealSeconds: number;
  meshSeconds: number;
  centralSeconds: number;
  /** CPU seconds all hosts' meshd and containerd used during the mesh run: near cores × meshSeconds means CPU-bound. */
  meshCpuSeconds: { meshd: number; containerd: number };
  /** The mesh run with every meshd on --peer-plaintext. */
  plaintextMeshSeconds: number;
  plaintextMeshCpuSeconds: { meshd: number; containerd: number };
  /** Blob copies each host sent to others during the mesh run (host 1 first). */
  sentByHost: Record<string, number>;
}

const CENTRAL_PORT = 5050;
const REPO = 'bench/fanout';

type LogLine = { msg?: string; time?: number; image?: string; digest?: string; bytes?: number; from?: string[] };

export async function meshdLog(host: FleetHost): Promise<LogLine[]> {
  const text = await readFile(host.meshdLog, 'utf8');
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
}

function imageBytes(image: BuiltImage): number {
  return image.blobs.reduce((n, b) => n + b.size, 0);
}

export interface MeshRun {
  seconds: number;
  cpuSeconds: { meshd: number; containerd: number };
  sent: Record<string, number>;
  /** When the push ended (ms since the epoch), and each host's meshd + containerd CPU-s from then until all were done. */
  pushed: number;
  cpuAfterPush: Record<string, number>;
}

/** The mesh run: seconds from the end of the push to h1 until every other host logged the replica. */
export async function meshRun(fleet: Fleet, image: BuiltImage, say: (l: string) => void): Promise<MeshRun> {
  const [h1, ...others] = fleet.hosts;
  const name = `docker.io/${REPO}:${image.tag}`;
  const cpu = async () => ({
    meshd: await cpuSeconds(fleet.hosts.map((h) => h.meshdPid)),
    containerd: await cpuSeconds(fleet.hosts.map((h) => h.containerdPid)),
  });
  const cpuBefore = await cpu();
  await h1.skopeo(['copy', `oci:${image.dir}:${image.tag}`, `docker://127.0.0.1:5000/${REPO}:${image.tag}`, '--dest-tls-verify=false']);
  const pushed = Date.now();
  const hostCpu = () => Promise.all(fleet.hosts.map((h) => cpuSeconds([h.meshdPid, h.containerdPid])));
  const hostCpuAtPush = await hostCpu();
  say(`  pushed to ${h1.name}; waiting for ${others.length} hosts to replicate…`);
  const done = await waitFor('every host to replicate the pushed image', async () => {
    const times: number[] = [];
    for (const h of others) {
      const line = (await meshdLog(h)).find((l) => l.msg === 'replicated' && l.image === name);
      if (!line?.time) return undefined;
      times.push(line.time);
    }
    return times;
  }, { timeoutMs: 600_000, intervalMs: 200 });
  const cpuAfter = await cpu();
  const hostCpuAtEnd = await hostCpu();
  const cpuAfterPush = Object.fromEntries(fleet.hosts.map((h, i) => [h.name, hostCpuAtEnd[i] - hostCpuAtPush[i]]));
  // Each host really holds every blob (containerd verified what meshd committed).
  for (const h of others) {
    const content = await h.ctr(['content', 'ls', '-q']);
    const missing = image.blobs.filter((b) => !content.includes(b.digest));
    if (missing.length) throw new Error(`${h.name} logged the replica but lacks ${missing.map((b) => b.digest).join(', ')}`);
  }
  // Who sent each blob copy: the holders a host's transfer took it from (the feeders of its stripes), a share each.
  const byId = new Map(fleet.hosts.map((h) => [h.peerId, h.name]));
  const sent: Record<string, number> = Object.fromEntries(fleet.hosts.map((h) => [h.name, 0]));
  for (const h of others) {
    for (const l of await meshdLog(h)) {
      if (l.msg !== 'fetched from the mesh' || !image.blobs.some((b) => b.digest === l.digest)) continue;
      const from: string[] = l.from ?? [];
      for (const id of from) {
        const source = byId.get(id);
        if (source) sent[source] += 1 / from.length;
      }
    }
  }
  return { seconds: (Math.max(...done) - pushed) / 1000, cpuSeconds: { meshd: cpuAfter.meshd - cpuBefore.meshd, containerd: cpuAfter.containerd - cpuBefore.containerd }, sent, pushed, cpuAfterPush };
}

/** The central run: a Go registry in host 1 serving the image, every other host fetching it at once. */
async function centralRun(fleet: Fleet, image: BuiltImage, say: (l: string) => void): Promise<number> {
  const [h1, ...others] = fleet.hosts;
  const dir = join(h1.dir, 'central-registry');
  await h1.exec('mkdir', ['-p', dir]);
  const config = await writeDockerRegistryConfig(dir, `${h1.address}:${CENTRAL_PORT}`);
  const registry = h1.spawn('docker-registry', ['serve', config]);
  const stop = onCleanup(`central docker-registry on ${h1.name}`, () => registry.stop());
  try {
    const url = `${h1.address}:${CENTRAL_PORT}`;
    await waitFor('the central registry to answer', async () => (await h1.tryExec('curl', ['-sf', `http://${url}/v2/`])).code === 0);
    await h1.skopeo(['copy', `oci:${image.dir}:${image.tag}`, `docker://${url}/${REPO}:${image.tag}`, '--dest-tls-verify=false']);
    say(`  ${others.length} hosts fetching from the registry on ${h1.name}…`);
    const started = Date.now();
    await Promise.all(others.map((h) => h.ctr(['-n', 'central', 'content', 'fetch', '--plain-http', `${url}/${REPO}:${image.tag}`], { timeoutMs: 900_000 })));
    return (Date.now() - started) / 1000;
  } finally {
    await stop();
  }
}

/** Runs `body` on a fleet of its own, brought down afterwards. */
export async function onFleet<T>(opts: FanoutOptions, meshdArgs: string[], say: (l: string) => void, body: (fleet: Fleet) => Promise<T>): Promise<T> {
  say(`bringing up a ${opts.hosts}-host fleet, every link ${opts.rateMbit} Mbit/s each way${meshdArgs.length ? `, meshd ${meshdArgs.join(' ')}` : ''}…`);
  const fleet = await Fleet.up(opts.hosts, { shape: { rateMbit: opts.rateMbit }, waitFor: 'full-mesh', meshdArgs });
  const down = onCleanup('fan-out fleet', () => fleet.down());
  try {
    // How the hosts' TCP shares the links moves the figures (docs/benchmarks.md, "what BBR does on these links").
    say(`  hosts' TCP congestion control: ${(await fleet.hosts[0].exec('sysctl', ['-n', 'net.ipv4.tcp_congestion_control'])).trim()} (FLEET_TCP_CC sets it)`);
    return await body(fleet);
  } finally {
    await down();
  }
}

export async function benchFanout(opts: FanoutOptions, say: (l: string) => void): Promise<FanoutReport> {
  // Two images of the same shape: the central run must not find the mesh run's blobs already on the hosts.
  const images = [buildImage({ layerSizes: opts.layersMiB.map((m) => m * MiB), tag: 'mesh' }), buildImage({ layerSizes: opts.layersMiB.map((m) => m * MiB), tag: 'central' })];
  try {
    const bytes = imageBytes(images[0]);
    const idealSeconds = (bytes * 8) / (opts.rateMbit * 1e6);
    say(`image: ${opts.layersMiB.length} layers, ${(bytes / MiB).toFixed(0)} MiB; ideal S/B = ${idealSeconds.toFixed(1)} s`);
    const { mesh, centralSeconds } = await onFleet(opts, [], say, async (fleet) => {
      say('mesh: push to h1, replication to every other host (data plane over TLS)');
      const mesh = await meshRun(fleet, images[0], say);
      say(`  all hosts hold it after ${mesh.seconds.toFixed(1)} s`);
      if (opts.keepLogsIn) {
        await mkdir(opts.keepLogsIn, { recursive: true });
        for (const h of fleet.hosts) await copyFile(h.meshdLog, join(opts.keepLogsIn, `${h.name}.log`));
        say(`  meshd logs kept in ${opts.keepLogsIn}`);
      }
      say('central: every other host pulls from one docker-registry on h1');
      const centralSeconds = await centralRun(fleet, images[1], say);
      say(`  all hosts hold it after ${centralSeconds.toFixed(1)} s`);
      return { mesh, centralSeconds };
    });
    // A fleet of its own: fresh containerds, so the same image is transferred again.
    const plaintext = await onFleet(opts, ['--peer-plaintext'], say, async (fleet) => {
      say('mesh again, every meshd with --peer-plaintext');
      const run = await meshRun(fleet, images[0], say);
      say(`  all hosts hold it after ${run.seconds.toFixed(1)} s`);
      return run;
    });
    return {
      hosts: opts.hosts, imageBytes: bytes, rateMbit: opts.rateMbit, idealSeconds, meshSeconds: mesh.seconds, meshCpuSeconds: mesh.cpuSeconds,
      plaintextMeshSeconds: plaintext.seconds, plaintextMeshCpuSeconds: plaintext.cpuSeconds, centralSeconds, sentByHost: mesh.sent,
    };
  } finally {
    for (const image of images) await rm(image.dir, { recursive: true, force: true });
  }
}
