// A registry listening off loopback is open to nobody by accident: host 1 listens on all its addresses
// with a token file and lets host 3's address read; host 2, on the same network, gets nothing without
// the token — no manifest, no blob, no image pulled through the mesh on its behalf, no admin answer —
// and everything with it.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensurePackages } from '../helpers/apt.js';
import { buildImage, type BuiltImage } from '../helpers/oci-image.js';
import { Fleet, waitFor, type FleetHost } from './index.js';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const token = randomBytes(16).toString('hex');
const dir = mkdtempSync(join(tmpdir(), 'lm-access-'));
const tokenFile = join(dir, 'token');
writeFileSync(tokenFile, token, { mode: 0o600 });

/** curl from `from` to host 1's registry (by its fleet address); status and body. */
async function ask(from: FleetHost, to: FleetHost, path: string, args: string[] = []): Promise<{ status: number; body: string }> {
  const out = await from.exec('curl', ['-sS', '--max-time', '20', '-w', '\n%{http_code}', '-H', `accept: ${MANIFEST}`, ...args, `http://${to.address}:5000${path}`]);
  const cut = out.lastIndexOf('\n');
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
}

const withToken = ['-H', `authorization: Bearer ${token}`];

describe('a registry off loopback', () => {
  let fleet: Fleet;
  let held: BuiltImage;
  let elsewhere: BuiltImage;

  beforeAll(async () => {
    await ensurePackages({ curl: 'curl' });
    held = buildImage({ layerSizes: [256 << 10], tag: '1' });
    elsewhere = buildImage({ layerSizes: [300 << 10], tag: '1' });
    fleet = await Fleet.up(3, {
      waitFor: 'full-mesh',
      meshdArgs: (i, net) => i === 1
        ? ['--registry-addr', '0.0.0.0:5000', '--registry-token-file', tokenFile, '--registry-allow', `${net.addressOf(3)}/32`]
        : [],
    });
    const [h1, , h3] = fleet.hosts;
    await h1.loadImage(held);
    await h3.loadImage(elsewhere, { repo: 'docker.io/library/other' });
    await waitFor('host 1 to see that host 3 holds the other image', async () =>
      (await h1.whoHas('docker.io/library/other:1')).some((p) => p.id === h3.peerId));
    // The mirror asks only holders whose data plane it knows (each peer tells it once connected).
    await waitFor('host 1 to know host 3\'s data plane', async () =>
      (await h1.peers()).some((p) => p.id === h3.peerId && (p.info?.dataPlanePort ?? 0) > 0));
  }, 180_000);

  afterAll(async () => {
    await fleet?.down();
    for (const d of [dir, held?.dir, elsewhere?.dir]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it('answers nothing but 401 without the token: reads, mirror reads, admin calls and writes', async () => {
    const [h1, h2] = fleet.hosts;
    const blob = randomBytes(500).toString('hex');
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const asks: [string, string[]][] = [
      ['/v2/', []],
      ['/v2/app/manifests/1', []],
      [`/v2/app/blobs/${held.layers[0].digest}`, []],
      ['/v2/other/manifests/1', []],
      [`/v2/other/blobs/${elsewhere.layers[0].digest}`, []],
      ['/_mesh/v1/status', []],
      ['/_mesh/v1/peers', []],
      ['/_mesh/v1/images?mesh=1', []],
      [`/_mesh/v1/who-has?key=${held.digest}`, []],
      [`/v2/app/blobs/uploads/?digest=${digest}`, ['-X', 'POST', '--data-binary', blob]],
      ['/v2/app/manifests/1', ['-X', 'DELETE']],
      ['/v2/app/manifests/1', ['-H', 'authorization: Bearer wrong-token']],
    ];
    for (const [path, args] of asks) {
      const r = await ask(h2, h1, path, args);
      expect(r.status, `${args.join(' ')} ${path}`).toBe(401);
      expect(r.body, path).not.toContain(elsewhere.digest);
      expect(r.body, path).not.toContain(h1.peerId);
    }
    // The mirror did not fetch for them: host 1 holds nothing of the other image.
    expect(await h1.ctr(['content', 'ls', '-q'])).not.toContain(elsewhere.layers[0].digest);
  });

  it('serves everything with the token, the mirror path and the admin API included', async () => {
    const [h1, h2, h3] = fleet.hosts;
    const manifest = await ask(h2, h1, '/v2/app/manifests/1', withToken);
    expect(manifest.status).toBe(200);
    expect(createHash('sha256').update(manifest.body).digest('hex')).toBe(held.digest.slice(7));
    const mirrored = await ask(h2, h1, '/v2/other/manifests/1', withToken);
    expect(mirrored.status, `host 1's log ends with:\n${readFileSync(h1.meshdLog, 'utf8').slice(-4000)}`).toBe(200);
    expect(createHash('sha256').update(mirrored.body).digest('hex')).toBe(elsewhere.digest.slice(7));
    const layer = await ask(h2, h1, `/v2/other/blobs/${elsewhere.layers[0].digest}`, [...withToken, '-o', '/dev/null']);
    expect(layer.status).toBe(200);
    const peers = await h2.meshctl(['--node', `http://${h1.address}:5000`, '--token', token, '--json', 'peers']);
    expect(peers.code).toBe(0);
    expect(peers.stdout).toContain(h3.peerId);
    const refused = await h2.meshctl(['--node', `http://${h1.address}:5000`, 'peers']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/401/);
  });

  it('lets the allowed network read without the token, but not write', async () => {
    const [h1, , h3] = fleet.hosts;
    expect((await ask(h3, h1, '/v2/app/manifests/1')).status).toBe(200);
    expect((await ask(h3, h1, '/_mesh/v1/status')).status).toBe(200);
    expect((await ask(h3, h1, '/v2/app/manifests/1', ['-X', 'DELETE'])).status).toBe(401);
  });
});
