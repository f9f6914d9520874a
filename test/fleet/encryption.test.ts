// The peer data plane on a real network: a capture of the fleet's bridge during a mirror pull and a
// replication holds no slice of any blob and not the image name; a host that is not a member, holding a
// request recorded as the real client sends it, gets no blob byte by replaying it to the node it was for,
// to another member, or with another body.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSwarmKey } from '../../src/dht/swarm-key.js';
import { peerKey } from '../../src/mirror/peer-auth.js';
import { BLOB_PATH, SEQUENCE_PATH } from '../../src/mirror/peer-protocol.js';
import { ensurePackages } from '../helpers/apt.js';
import { buildImage, type BuiltImage } from '../helpers/oci-image.js';
import { recordPeerRequest, type RecordedRequest } from '../helpers/peer-record.js';
import { Fleet, REGISTRY_ADDR, waitFor, type FleetHost } from './index.js';
import { holdsWhole } from './holdings.js';
import { runNames } from './layout.js';

const MiB = 1 << 20;
const PEER_PORT = 5001;
/** A name found nowhere else, so that finding it in the capture can only mean it crossed in clear. */
const REPO = 'docker.io/library/tls-probe-5e1f';
const SLICE = 64;

const blobBytes = (image: BuiltImage, digest: string) => readFileSync(join(image.dir, 'blobs', 'sha256', digest.slice('sha256:'.length)));

/**
 * Several 64-byte slices of each layer and config: the start, the end and points between. Several, since a
 * slice split across two packets is not contiguous in the capture; with --peer-plaintext this run finds
 * nearly all of them (27 of 30 when tried), over TLS none.
 */
function slicesOf(image: BuiltImage): Buffer[] {
  return image.blobs.filter((b) => !b.mediaType.includes('manifest') && !b.mediaType.includes('index')).flatMap((b) => {
    const bytes = blobBytes(image, b.digest);
    const starts = [0, 0.25, 0.5, 0.75].map((f) => Math.floor((bytes.length - SLICE) * f)).concat(bytes.length - SLICE);
    return [...new Set(starts)].map((s) => bytes.subarray(s, s + SLICE));
  });
}

/**
 * tcpdump on the fleet's own bridge (root namespace), whole packets, written as they come, with a large
 * buffer: a packet the kernel dropped would be a slice never looked at, so drops fail the capture.
 */
async function capture(bridge: string, file: string): Promise<() => Promise<Buffer>> {
  const proc = spawn('tcpdump', ['-i', bridge, '-U', '-s', '0', '-B', '65536', '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  await waitFor(`tcpdump to listen on ${bridge}`, () => /listening on/.test(stderr) || (proc.exitCode !== null && Promise.reject(new Error(stderr))));
  return async () => {
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGINT');
    await exited;
    const dropped = Number(/(\d+) packets? dropped by kernel/.exec(stderr)?.[1] ?? NaN);
    if (dropped !== 0) throw new Error(`tcpdump on ${bridge} dropped packets or did not say: ${stderr}`);
    return readFileSync(file);
  };
}

/** Sends a recorded request with curl from inside `host`, over TLS, without checking the server (as an attacker would). */
async function replay(host: FleetHost, to: FleetHost, rec: RecordedRequest, body = rec.body): Promise<{ status: number; body: Buffer }> {
  const out = join(host.dir, `replay-${Date.now()}`);
  const bodyFile = `${out}.body`;
  writeFileSync(bodyFile, body);
  const headers = Object.entries(rec.headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const data = rec.method === 'POST' ? ['--data-binary', `@${bodyFile}`] : [];
  const status = await host.exec('curl', ['-sk', '--tlsv1.3', '-X', rec.method, ...headers, ...data, '-o', out, '-w', '%{http_code}',
    `https://${to.address}:${PEER_PORT}${rec.path}`]);
  return { status: Number(status), body: readFileSync(out) };
}

describe('the peer data plane on the wire', () => {
  let fleet: Fleet;
  const images: BuiltImage[] = [];

  beforeAll(async () => {
    await ensurePackages({ tcpdump: 'tcpdump' });
    fleet = await Fleet.up(4, { reconcileInterval: '1s', waitFor: 'full-mesh' });
    // h4 stays on the network with no daemon: a host that is not a member, holding no key.
    await fleet.host(4).killMeshd('SIGTERM');
    images.push(buildImage({ layerSizes: [3 * MiB, 1 * MiB], tag: '1' }), buildImage({ layerSizes: [2 * MiB, 512 * 1024], tag: '2' }));
  }, 240_000);
  afterAll(async () => {
    await fleet?.down();
    for (const image of images) rmSync(image.dir, { recursive: true, force: true });
  });

  it('carries no blob slice and no image name in clear during a mirror pull and a replication', async () => {
    const [h1, h2, h3] = fleet.hosts;
    const [pulled, pushed] = images;
    const name = await h1.loadImage(pulled, { repo: REPO });
    // The name is announced no earlier than the content it names: seeing it, h2 can find every blob.
    await waitFor('h2 to know that h1 holds the pulled image', async () => (await h2.whoHas(name)).some((p) => p.id === h1.peerId));
    const run = runNames(fleet.run);
    const stop = await capture(run.bridge, join(run.dir, 'bridge.pcap'));
    let pcap: Buffer;
    try {
      const hosts = join(h2.dir, 'certs.d');
      mkdirSync(join(hosts, '_default'), { recursive: true });
      writeFileSync(join(hosts, '_default', 'hosts.toml'), `server = "http://127.0.0.1:9"\n[host."http://${REGISTRY_ADDR}"]\n  capabilities = ["pull", "resolve"]\n`);
      await h2.ctr(['images', 'pull', '--hosts-dir', hosts, name], { timeoutMs: 60_000 });
      expect(await h2.ctr(['images', 'ls'])).toContain(pulled.digest);

      await h1.skopeo(['copy', `oci:${pushed.dir}:2`, `docker://${REGISTRY_ADDR}/${REPO.split('/').pop()}:2`, '--dest-tls-verify=false']);
      for (const h of [h2, h3]) await waitFor(`${h.name} to replicate the push`, () => holdsWhole(h, pushed, `${REPO}:2`), { timeoutMs: 60_000 });
    } finally {
      pcap = await stop();
    }
    // The transfers crossed the bridge and were captured: at least the bytes of the layers moved.
    const moved = [pulled, pushed].reduce((n, image) => n + image.layers.reduce((m, l) => m + l.size, 0), 0);
    expect(pcap.length).toBeGreaterThan(moved);
    const found = images.flatMap(slicesOf).filter((slice) => pcap.includes(slice));
    expect(found.length, 'blob slices found in the capture').toBe(0);
    for (const text of [REPO.split('/').pop()!, encodeURIComponent(REPO)]) expect(pcap.includes(Buffer.from(text)), text).toBe(false);
  }, 180_000);

  it('gives a non-member replaying a recorded request no blob byte, on the node it was for, on another member, or with another body', async () => {
    const [h1, h2, , h4] = fleet.hosts;
    const [pulled] = images;
    const layer = pulled.layers[0];
    const key = peerKey(parseSwarmKey(readFileSync(fleet.swarmKeyFile, 'utf8')));
    const get = await recordPeerRequest(key, h1.peerId, `${BLOB_PATH}${layer.digest}`);
    // Sent once by a member: the recording is a good request.
    const original = await replay(h2, h1, get);
    expect(original.status).toBe(200);
    expect(original.body.equals(blobBytes(pulled, layer.digest))).toBe(true);
    const noByte = (body: Buffer) => slicesOf(pulled).every((s) => !body.includes(s)) && body.length < 1000;
    for (const to of [h1, h2]) {
      const replayed = await replay(h4, to, get);
      expect(replayed.status, `replay to ${to.name}`).toBe(401);
      expect(noByte(replayed.body)).toBe(true);
    }
    // Never sent, so only its binding to the body refuses it.
    const sequence = await recordPeerRequest(key, h1.peerId, SEQUENCE_PATH, {
      method: 'POST', body: JSON.stringify({ blobs: [{ digest: pulled.layers[1].digest, size: pulled.layers[1].size }] }),
    });
    const changed = Buffer.from(JSON.stringify({ blobs: [{ digest: layer.digest, size: layer.size }] }));
    const modified = await replay(h4, h1, sequence, changed);
    expect(modified.status).toBe(401);
    expect(noByte(modified.body)).toBe(true);
  }, 60_000);
});
