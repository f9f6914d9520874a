// Pull through the mirror: containerd pulls a multi-layer image that only a peer holds, through the
// local meshd (B) which fetches every blob from the peer's data plane (A), against containerd pulling
// the same image straight from Debian's Go docker-registry. Everything on one machine, loopback only:
//   - one private containerd whose namespaces do not share content (writeContainerdConfig), so that
//     namespaces act as hosts: A's namespace holds the image, B's and the pulling client's start empty;
//   - meshd A (namespace of its own, holds the image), docker-registry (holds the same image), and a
//     second mesh whose A and B run with --peer-plaintext (its own swarm key), to measure what TLS costs;
//   - for every mirror round a fresh meshd B (fresh data dir and namespace, bootstrap to A, same swarm
//     key), so that each round really transfers every blob from A; B's start is not timed, nor its
//     pull of a 16 MiB warm-up image before the measured one (as a meshd that has been running has
//     compiled its code; the Go registry on the direct path has been running all along);
//   - the mirror path pulls into B's namespace, as on a real host where containerd pulls into the
//     namespace its meshd serves (B then sees the client's copy and stores none of its own); the direct
//     path pulls into a fresh namespace; both are removed afterwards.
// Two variants, rounds rotating through the paths: `ctr content fetch` (bytes into containerd only)
// and `ctr images pull` (fetch, then unpack into the default snapshotter, the same work for both paths).
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PeerEntry } from '../src/api/admin-types.js';
import { generateSwarmKey, parseSwarmKey } from '../src/dht/swarm-key.js';
import { peerKey, proof } from '../src/mirror/peer-auth.js';
import { ctr } from '../test/helpers/containerd.js';
import { buildImage, type BuiltImage } from '../test/helpers/oci-image.js';
import { waitFor } from '../test/helpers/wait.js';
import { curlGet } from './lib/curl.js';
import { dropNamespace, timedCtr } from './lib/ctr.js';
import { request } from './lib/http.js';
import { cpuSeconds } from '../test/helpers/procfs.js';
import { startDockerRegistry, startMeshd, startPrivateContainerd, type MeshdServer, type PrivateContainerd, type Server } from './lib/servers.js';
import { MB, median } from './lib/stats.js';
import { skopeoCopy } from './skopeo-push.js';

export type PullVariant = 'fetch' | 'pull';
/** `mirror`: over TLS (the default); `plaintext`: both meshd with --peer-plaintext. */
export type PullPath = 'mirror' | 'plaintext' | 'direct';
const PATHS: PullPath[] = ['mirror', 'plaintext', 'direct'];

export const VARIANT_LABEL: Record<PullVariant, string> = {
  fetch: 'ctr content fetch (no unpack)',
  pull: 'ctr images pull (with unpack)',
};

export interface PullRound {
  seconds: number;
  /** CPU seconds of the serving side: meshd A + meshd B (TLS or plaintext), or docker-registry. */
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
  plaintext: PullRound[];
  direct: PullRound[];
  mirrorMedianSeconds: number;
  plaintextMedianSeconds: number;
  directMedianSeconds: number;
  /** direct time / mirror time: the mirror's throughput as a fraction of the direct path's. */
  ratio: number;
  /** plaintext time / TLS time: the mirror's throughput over TLS as a fraction of plaintext's. */
  tlsRatio: number;
}

export interface MirrorPullReport {
  imageBytes: number;
  layers: number;
  variants: VariantResult[];
  /** curl of the largest layer from A's peer data plane (with a membership proof), MB/s, median: over TLS, in plaintext. */
  peerPlaneMBps: number;
  plaintextPeerPlaneMBps: number;
  /** curl of the same layer from docker-registry, MB/s, median. */
  registryMBps: number;
}

const say0 = (_: string) => {};

/** Waits until the processes use less than `maxFraction` of a core over a second (at most `timeoutMs`). */
export async function settle(pids: number[], maxFraction = 0.1, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const before = await cpuSeconds(pids);
    await new Promise((r) => setTimeout(r, 1000));
    if ((await cpuSeconds(pids)) - before < maxFraction) return;
  }
}

const suffix = () => randomBytes(4).toString('hex');

/** One mesh's node A and its swarm key: B nodes of a round join it. */
export interface NodeA {
  keyFile: string;
  a: MeshdServer;
  /** Extra flags of its nodes (--peer-plaintext). */
  flags: string[];
}

interface Setup {
  containerd: PrivateContainerd;
  meshes: Record<'mirror' | 'plaintext', NodeA>;
  registry: Server;
  work: string;
  image: BuiltImage;
  /** The image as the mirror path pulls it (by its original name) and as the direct path does. */
  mirrorRef: string;
  directRef: string;
  /** A small image each B pulls through itself before the measured pull, as a running meshd has done. */
  warmUpRef: string;
}

/** A fresh meshd B: its own data dir and namespace, bootstrapped to A; resolves once B knows A's data plane. */
export async function startNodeB(containerd: PrivateContainerd, { a, keyFile, flags }: NodeA): Promise<{ b: MeshdServer; ns: string }> {
  const ns = `bench-b-${suffix()}`;
  const b = await startMeshd('meshd B', [
    '--store', 'containerd', '--containerd-socket', containerd.socket, '--containerd-namespace', ns,
    '--swarm-key', keyFile, '--node-name', 'b', '--bootstrap', a.p2p[0], ...flags,
    // B must fetch what its client asks for, not copy A's pushed images as it joins.
    '--replicate', 'none',
  ]);
  try {
    await waitFor('meshd B to know meshd A and its data plane', async () => {
      const res = await request('GET', `${b.url}/_mesh/v1/peers`);
      const peers = JSON.parse(res.body) as PeerEntry[];
      return peers.some((p) => p.id === a.peerId && p.info?.dataPlanePort);
    }, { timeoutMs: 30_000, intervalMs: 100 });
    // B's start (DHT bootstrap, first reconcile) and the previous round's GC must not overlap the measured pull.
    await settle([...b.pids, ...a.pids, ...containerd.pids]);
    const held = (await ctr(containerd.socket, ['-n', ns, 'content', 'ls', '-q'])).trim();
    if (held) throw new Error(`meshd B holds blobs before the pull, so it would measure nothing: ${held.split('\n').join(', ')}`);
    return { b, ns };
  } catch (err) {
    await b.stop();
    await dropNamespace(containerd.socket, ns);
    throw err;
  }
}

/** A containerd hosts dir (`ctr --hosts-dir`) that sends every registry's pulls to meshd B only. */
export async function mirrorHostsDir(work: string, ns: string, meshdUrl: string): Promise<string> {
  const hosts = join(work, `hosts-${ns}`);
  await mkdir(join(hosts, '_default'), { recursive: true });
  // Only meshd B: if it could not serve, the pull would fail (nothing listens on 127.0.0.1:9).
  await writeFile(join(hosts, '_default', 'hosts.toml'), `server = "http://127.0.0.1:9"\n[host."${meshdUrl}"]\n  capabilities = ["pull", "resolve"]\n`);
  return hosts;
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
    if (path !== 'direct') {
      const mesh = s.meshes[path];
      nodeB = await startNodeB(s.containerd, mesh);
      clientNs = nodeB.ns;
      const hosts = await mirrorHostsDir(s.work, clientNs, nodeB.b.url);
      args = ['-n', clientNs, ...verb, '--hosts-dir', hosts, s.mirrorRef];
      serverPids = [...mesh.a.pids, ...nodeB.b.pids];
      // The direct path's server has long been running; a meshd on a host has too: its code is compiled.
      await ctr(socket, ['-n', clientNs, 'content', 'fetch', '--hosts-dir', hosts, s.warmUpRef]);
      await settle([...serverPids, ...s.containerd.pids]);
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

/** curl of one blob: from each A's peer data plane (signed like meshd signs) and from docker-registry; median MB/s. */
async function rawGets(s: Setup, rounds: number): Promise<{ peer: number; plaintextPeer: number; registry: number }> {
  const blob = [...s.image.layers].sort((x, y) => y.size - x.size)[0];
  const path = `/peer/v1/blobs/${blob.digest}`;
  const fromPeer = async ({ a, keyFile }: NodeA) => {
    const key = peerKey(parseSwarmKey(await readFile(keyFile, 'utf8')));
    return curlGet(`${a.peerUrl}${path}`, { 'x-layermesh-auth': proof(key, { method: 'GET', path, target: a.peerId ?? '' }) });
  };
  const speeds: Record<'peer' | 'plaintextPeer' | 'registry', number[]> = { peer: [], plaintextPeer: [], registry: [] };
  for (let i = 0; i < rounds; i++) {
    const got = { peer: await fromPeer(s.meshes.mirror), plaintextPeer: await fromPeer(s.meshes.plaintext), registry: await curlGet(`${s.registry.url}/v2/bench/app/blobs/${blob.digest}`) };
    for (const [k, d] of Object.entries(got) as [keyof typeof speeds, { status: number; bytes: number; bytesPerSecond: number }][]) {
      if (d.bytes !== blob.size) throw new Error(`raw GET of ${blob.digest} (${k}): ${d.status}, ${d.bytes} B`);
      speeds[k].push(d.bytesPerSecond / MB);
    }
  }
  return { peer: median(speeds.peer), plaintextPeer: median(speeds.plaintextPeer), registry: median(speeds.registry) };
}

/** A node A holding the images, in a mesh of its own (own swarm key). */
export async function startNodeA(containerd: PrivateContainerd, images: BuiltImage[], keyFile: string, flags: string[]): Promise<NodeA> {
  await writeFile(keyFile, generateSwarmKey(), { mode: 0o600 }); // what `meshctl swarm-key generate` prints
  const a = await startMeshd(`meshd A${flags.length ? ' (plaintext)' : ''}`, [
    '--store', 'containerd', '--containerd-socket', containerd.socket, '--containerd-namespace', `bench-a-${suffix()}`,
    '--swarm-key', keyFile, '--node-name', 'a', ...flags,
  ]);
  if (!a.peerUrl || !a.peerId || a.p2p.length === 0) {
    await a.stop();
    throw new Error('this meshd build has no peer data plane or mesh (no peer/peerId/p2p in its ready line)');
  }
  for (const image of images) await skopeoCopy(image.dir, image.tag, a.host, 'app');
  return { a, keyFile, flags };
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
    say('starting containerd (isolated namespaces), meshd A (TLS), meshd A (plaintext), docker-registry…');
    const containerd = await startPrivateContainerd();
    stops.push(() => containerd.stop());
    const warmUp = buildImage({ layerSizes: [16 << 20], tag: 'warm-up', dir: join(work, 'warm-up') });
    const tls = await startNodeA(containerd, [image, warmUp], join(work, 'swarm.key'), []);
    stops.push(() => tls.a.stop());
    const plaintext = await startNodeA(containerd, [image, warmUp], join(work, 'swarm-plaintext.key'), ['--peer-plaintext']);
    stops.push(() => plaintext.a.stop());
    const registry = await startDockerRegistry('docker-registry (Go)');
    stops.push(() => registry.stop());
    await skopeoCopy(image.dir, image.tag, registry.host, 'bench/app');
    const s: Setup = {
      containerd, meshes: { mirror: tls, plaintext }, registry, work, image,
      mirrorRef: `docker.io/library/app:${image.tag}`,
      directRef: `${registry.host}/bench/app:${image.tag}`,
      warmUpRef: `docker.io/library/app:${warmUp.tag}`,
    };
    // A must announce the image before a B can find it (its reconcile is immediate at start; pushes are events).
    await settle([...tls.a.pids, ...plaintext.a.pids, ...containerd.pids]);

    const results = new Map<PullVariant, Record<PullPath, PullRound[]>>(opts.variants.map((v) => [v, { mirror: [], plaintext: [], direct: [] }]));
    for (let round = 1; round <= opts.rounds; round++) {
      for (const variant of opts.variants) {
        const order = PATHS.map((_, i) => PATHS[(i + round) % PATHS.length]);
        for (const path of order) {
          const r = await pullOnce(s, variant, path);
          results.get(variant)![path].push(r);
          const extra = r.lastBlobInSeconds !== undefined ? `, B had the last blob at ${r.lastBlobInSeconds.toFixed(2)} s` : '';
          say(`  ${variant} round ${round}/${opts.rounds} ${path.padEnd(9)} ${r.seconds.toFixed(2).padStart(6)} s  (server CPU ${r.serverCpu.toFixed(2)} s, containerd ${r.containerdCpu.toFixed(2)} s, ctr ${r.clientCpu.toFixed(2)} s${extra})`);
        }
      }
    }
    say('  raw GET of the largest layer: A\'s peer data plane (TLS, plaintext) vs docker-registry (curl)…');
    const raw = await rawGets(s, 3);
    return {
      imageBytes: image.blobs.reduce((n, b) => n + b.size, 0),
      layers: image.layers.length,
      variants: opts.variants.map((variant) => {
        const { mirror, plaintext: plain, direct } = results.get(variant)!;
        const [mirrorMedianSeconds, plaintextMedianSeconds, directMedianSeconds] = [mirror, plain, direct].map((rs) => median(rs.map((r) => r.seconds)));
        return {
          variant, mirror, plaintext: plain, direct, mirrorMedianSeconds, plaintextMedianSeconds, directMedianSeconds,
          ratio: directMedianSeconds / mirrorMedianSeconds, tlsRatio: plaintextMedianSeconds / mirrorMedianSeconds,
        };
      }),
      peerPlaneMBps: raw.peer,
      plaintextPeerPlaneMBps: raw.plaintextPeer,
      registryMBps: raw.registry,
    };
  } finally {
    for (const stop of stops.reverse()) await stop();
    await rm(work, { recursive: true, force: true });
  }
}
