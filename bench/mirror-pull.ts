// Pull through the mirror: containerd pulls a multi-layer image that only a peer holds, through the
// local meshd (B) which fetches every blob from the peer's data plane (A), against containerd pulling
// the same image straight from Debian's Go docker-registry. Everything on one machine, loopback only:
//   - one private containerd whose namespaces do not share content (writeContainerdConfig), so that
//     namespaces act as hosts: A's namespace holds the image, B's and the pulling client's start empty;
//   - meshd A (namespace of its own, holds the image), docker-registry (holds the same image);
//   - for every mirror round a fresh meshd B (fresh data dir and namespace, bootstrap to A, same swarm
//     key), so that each round really transfers every blob from A; B's start is not timed;
//   - the mirror path pulls into B's namespace, as on a real host where containerd pulls into the
//     namespace its meshd serves (B then sees the client's copy and stores none of its own); the direct
//     path pulls into a fresh namespace; both are removed afterwards.
// Two variants, rounds alternating between the paths: `ctr content fetch` (bytes into containerd only)
// and `ctr images pull` (fetch, then unpack into the default snapshotter, the same work for both paths).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PeerEntry } from '../src/api/admin-types.js';
import { generateSwarmKey, parseSwarmKey } from '../src/dht/swarm-key.js';
import { peerKey, proof } from '../src/mirror/peer-auth.js';
import { ctr } from '../test/helpers/containerd.js';
import type { BuiltImage } from '../test/helpers/oci-image.js';
import { waitFor } from '../test/helpers/wait.js';
import { curlGet } from './lib/curl.js';
import { request } from './lib/http.js';
import { cpuSeconds } from '../test/helpers/procfs.js';
import { startDockerRegistry, startMeshd, startPrivateContainerd, type MeshdServer, type PrivateContainerd, type Server } from './lib/servers.js';
import { MB, median } from './lib/stats.js';
import { skopeoCopy } from './skopeo-push.js';

export type PullVariant = 'fetch' | 'pull';
export type PullPath = 'mirror' | 'direct';

export const VARIANT_LABEL: Record<PullVariant, string> = {
  fetch: 'ctr content fetch (no unpack)',
  pull: 'ctr images pull (with unpack)',
};

export interface PullRound {
  seconds: number;
  /** CPU seconds of the serving side: meshd A + meshd B, or docker-registry. */
  serverCpu: number;
  /** CPU seconds of containerd (it writes the content, and unpacks for `pull`). */
  containerdCpu: number;
  /** CPU seconds of the ctr client itself. */
  clientCpu: number;
  /**
   * Mirror only: seconds from the start of the pull until meshd B had stored the last blob from A
   * (later than the pull's end when B streams blobs through and stores them after).
   */
  lastBlobInSeconds?: number;
}

export interface VariantResult {
  variant: PullVariant;
  mirror: PullRound[];
  direct: PullRound[];
  mirrorMedianSeconds: number;
  directMedianSeconds: number;
  /** direct time / mirror time: the mirror's throughput as a fraction of the direct path's. */
  ratio: number;
}

export interface MirrorPullReport {
  imageBytes: number;
  layers: number;
  variants: VariantResult[];
  /** curl of the largest layer from A's peer data plane (with a membership proof), MB/s, median. */
  peerPlaneMBps: number;
  /** curl of the same layer from docker-registry, MB/s, median. */
  registryMBps: number;
}

const say0 = (_: string) => {};

/** `ctr` under /usr/bin/time: wall seconds measured here, the client's CPU from time(1). */
async function timedCtr(socket: string, args: string[], timeFile: string): Promise<{ seconds: number; clientCpu: number }> {
  const child = spawn('/usr/bin/time', ['-o', timeFile, '-f', '%U %S', 'ctr', '--address', socket, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const t0 = process.hrtime.bigint();
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (code !== 0) throw new Error(`ctr ${args.join(' ')} exited with ${code}: ${stderr.trim()}`);
  const [user, sys] = (await readFile(timeFile, 'utf8')).trim().split(/\s+/).slice(-2).map(Number);
  return { seconds, clientCpu: user + sys };
}

/** Removes a namespace and what is in it (images, leases, then the content and snapshots containerd's GC frees). */
async function dropNamespace(socket: string, ns: string): Promise<void> {
  const lines = async (args: string[]) => (await ctr(socket, ['-n', ns, ...args]).catch(() => '')).split('\n').map((l) => l.trim()).filter(Boolean);
  const images = await lines(['images', 'ls', '-q']);
  if (images.length) await ctr(socket, ['-n', ns, 'images', 'rm', '--sync', ...images]).catch(() => '');
  const leases = await lines(['leases', 'ls', '-q']);
  if (leases.length) await ctr(socket, ['-n', ns, 'leases', 'rm', '--sync', ...leases]).catch(() => '');
  const content = await lines(['content', 'ls', '-q']);
  if (content.length) await ctr(socket, ['-n', ns, 'content', 'rm', ...content]).catch(() => '');
  await ctr(socket, ['namespaces', 'rm', ns]).catch(() => ''); // refused if anything is left: harmless
}

/** Waits until the processes use less than `maxFraction` of a core over a second (at most `timeoutMs`). */
async function settle(pids: number[], maxFraction = 0.1, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const before = await cpuSeconds(pids);
    await new Promise((r) => setTimeout(r, 1000));
    if ((await cpuSeconds(pids)) - before < maxFraction) return;
  }
}

const suffix = () => randomBytes(4).toString('hex');

interface Setup {
  containerd: PrivateContainerd;
  keyFile: string;
  a: MeshdServer;
  registry: Server;
  work: string;
  image: BuiltImage;
  /** The image as the mirror path pulls it (by its original name) and as the direct path does. */
  mirrorRef: string;
  directRef: string;
}

/** A fresh meshd B: its own data dir and namespace, bootstrapped to A; resolves once B knows A's data plane. */
async function startNodeB(s: Setup): Promise<{ b: MeshdServer; ns: string }> {
  const ns = `bench-b-${suffix()}`;
  const b = await startMeshd('meshd B', [
    '--store', 'containerd', '--containerd-socket', s.containerd.socket, '--containerd-namespace', ns,
    '--swarm-key', s.keyFile, '--node-name', 'b', '--bootstrap', s.a.p2p[0],
  ]);
  try {
    await waitFor('meshd B to know meshd A and its data plane', async () => {
      const res = await request('GET', `${b.url}/_mesh/v1/peers`);
      const peers = JSON.parse(res.body) as PeerEntry[];
      return peers.some((p) => p.id === s.a.peerId && p.info?.dataPlanePort);
    }, { timeoutMs: 30_000, intervalMs: 100 });
    // B's start (DHT bootstrap, first reconcile) and the previous round's GC must not overlap the measured pull.
    await settle([...b.pids, ...s.a.pids, ...s.containerd.pids]);
    return { b, ns };
  } catch (err) {
    await b.stop();
    await dropNamespace(s.containerd.socket, ns);
    throw err;
  }
}

async function pullOnce(s: Setup, variant: PullVariant, path: PullPath): Promise<PullRound> {
  const { socket } = s.containerd;
  let clientNs = `bench-client-${suffix()}`;
  const timeFile = join(s.work, `time-${clientNs}`);
  const verb = variant === 'pull' ? ['images', 'pull'] : ['content', 'fetch'];
  let nodeB: { b: MeshdServer; ns: string } | undefined;
  try {
    let args: string[];
    let serverPids: number[];
    if (path === 'mirror') {
      nodeB = await startNodeB(s);
      clientNs = nodeB.ns;
      const hosts = join(s.work, `hosts-${clientNs}`);
      await mkdir(join(hosts, '_default'), { recursive: true });
      // Only meshd B: if it could not serve, the pull would fail (nothing listens on 127.0.0.1:9).
      await writeFile(join(hosts, '_default', 'hosts.toml'), `server = "http://127.0.0.1:9"\n[host."${nodeB.b.url}"]\n  capabilities = ["pull", "resolve"]\n`);
      args = ['-n', clientNs, ...verb, '--hosts-dir', hosts, s.mirrorRef];
      serverPids = [...s.a.pids, ...nodeB.b.pids];
    } else {
      await settle([...s.registry.pids, ...s.containerd.pids]);
      args = ['-n', clientNs, ...verb, '--plain-http', s.directRef];
      serverPids = s.registry.pids;
    }
    const serverBefore = await cpuSeconds(serverPids);
    const containerdBefore = await cpuSeconds(s.containerd.pids);
    const startedAt = Date.now();
    const { seconds, clientCpu } = await timedCtr(socket, args, timeFile);
    const serverCpu = (await cpuSeconds(serverPids)) - serverBefore;
    const containerdCpu = (await cpuSeconds(s.containerd.pids)) - containerdBefore;

    // The client holds every blob of the image, by the same digests.
    const content = await ctr(socket, ['-n', clientNs, 'content', 'ls', '-q']);
    const missing = s.image.blobs.filter((b) => !content.includes(b.digest));
    if (missing.length) throw new Error(`${path} ${variant}: the client namespace lacks ${missing.map((b) => b.digest).join(', ')}`);
    const round: PullRound = { seconds, serverCpu, containerdCpu, clientCpu };
    if (nodeB) {
      // ... and every one of them came from A's data plane, in this round (B may still be storing the
      // last ones when the client is done, if it streams them through).
      const b = nodeB.b;
      const fetched = () => b.logs.filter((l) => l.msg === 'fetched from the mesh');
      const notFromA = () => s.image.blobs.filter((blob) => !fetched().some((l) => l.digest === blob.digest));
      await waitFor('meshd B to have fetched every blob from A', () => notFromA().length === 0, { timeoutMs: 30_000, intervalMs: 50 })
        .catch(() => {
          throw new Error(`meshd B did not fetch ${notFromA().map((blob) => blob.digest).join(', ')} from the mesh`);
        });
      round.lastBlobInSeconds = (Math.max(...fetched().map((l) => Number(l.time))) - startedAt) / 1000;
    }
    return round;
  } finally {
    await rm(timeFile, { force: true });
    if (nodeB) await nodeB.b.stop();
    await dropNamespace(socket, clientNs);
  }
}

/** curl of one blob: from A's peer data plane (signed like meshd signs) and from docker-registry. */
async function rawGets(s: Setup, rounds: number): Promise<{ peer: number; registry: number }> {
  const key = peerKey(parseSwarmKey(await readFile(s.keyFile, 'utf8')));
  const blob = [...s.image.layers].sort((x, y) => y.size - x.size)[0];
  const peer: number[] = [];
  const registry: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const path = `/peer/v1/blobs/${blob.digest}`;
    const p = await curlGet(`${s.a.peerUrl}${path}`, { 'x-layermesh-auth': proof(key, { method: 'GET', path, target: s.a.peerId ?? '' }) });
    const r = await curlGet(`${s.registry.url}/v2/bench/app/blobs/${blob.digest}`);
    if (p.bytes !== blob.size || r.bytes !== blob.size) throw new Error(`raw GET of ${blob.digest}: peer plane ${p.status} ${p.bytes} B, registry ${r.status} ${r.bytes} B`);
    peer.push(p.bytesPerSecond / MB);
    registry.push(r.bytesPerSecond / MB);
  }
  return { peer: median(peer), registry: median(registry) };
}

export async function benchMirrorPull(
  image: BuiltImage,
  opts: { work: string; rounds: number; variants: PullVariant[] },
  say: (line: string) => void = say0,
): Promise<MirrorPullReport> {
  const work = join(opts.work, 'mirror');
  await mkdir(work, { recursive: true });
  const stops: (() => Promise<void>)[] = [];
  try {
    say('starting containerd (isolated namespaces), meshd A, docker-registry…');
    const containerd = await startPrivateContainerd();
    stops.push(() => containerd.stop());
    const keyFile = join(work, 'swarm.key');
    await writeFile(keyFile, generateSwarmKey(), { mode: 0o600 }); // what `meshctl swarm-key generate` prints
    const a = await startMeshd('meshd A', [
      '--store', 'containerd', '--containerd-socket', containerd.socket, '--containerd-namespace', `bench-a-${suffix()}`,
      '--swarm-key', keyFile, '--node-name', 'a',
    ]);
    stops.push(() => a.stop());
    if (!a.peerUrl || !a.peerId || a.p2p.length === 0) throw new Error('this meshd build has no peer data plane or mesh (no peer/peerId/p2p in its ready line)');
    const registry = await startDockerRegistry('docker-registry (Go)');
    stops.push(() => registry.stop());
    await skopeoCopy(image.dir, image.tag, a.host, 'app');
    await skopeoCopy(image.dir, image.tag, registry.host, 'bench/app');
    const s: Setup = {
      containerd, keyFile, a, registry, work, image,
      mirrorRef: `docker.io/library/app:${image.tag}`,
      directRef: `${registry.host}/bench/app:${image.tag}`,
    };
    // A must announce the image before a B can find it (its reconcile is immediate at start; pushes are events).
    await settle([...a.pids, ...containerd.pids]);

    const results = new Map<PullVariant, { mirror: PullRound[]; direct: PullRound[] }>(opts.variants.map((v) => [v, { mirror: [], direct: [] }]));
    for (let round = 1; round <= opts.rounds; round++) {
      for (const variant of opts.variants) {
        const order: PullPath[] = round % 2 ? ['mirror', 'direct'] : ['direct', 'mirror'];
        for (const path of order) {
          const r = await pullOnce(s, variant, path);
          results.get(variant)![path].push(r);
          const extra = r.lastBlobInSeconds !== undefined ? `, B had the last blob at ${r.lastBlobInSeconds.toFixed(2)} s` : '';
          say(`  ${variant} round ${round}/${opts.rounds} ${path.padEnd(6)} ${r.seconds.toFixed(2).padStart(6)} s  (server CPU ${r.serverCpu.toFixed(2)} s, containerd ${r.containerdCpu.toFixed(2)} s, ctr ${r.clientCpu.toFixed(2)} s${extra})`);
        }
      }
    }
    say('  raw GET of the largest layer: A\'s peer data plane vs docker-registry (curl)…');
    const raw = await rawGets(s, 3);
    return {
      imageBytes: image.blobs.reduce((n, b) => n + b.size, 0),
      layers: image.layers.length,
      variants: opts.variants.map((variant) => {
        const { mirror, direct } = results.get(variant)!;
        const mirrorMedianSeconds = median(mirror.map((r) => r.seconds));
        const directMedianSeconds = median(direct.map((r) => r.seconds));
        return { variant, mirror, direct, mirrorMedianSeconds, directMedianSeconds, ratio: directMedianSeconds / mirrorMedianSeconds };
      }),
      peerPlaneMBps: raw.peer,
      registryMBps: raw.registry,
    };
  } finally {
    for (const stop of stops.reverse()) await stop();
    await rm(work, { recursive: true, force: true });
  }
}
