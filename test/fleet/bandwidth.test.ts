// Bandwidth limits on real hosts with unshaped links: a limited download and a limited upload each run within
// 10 % of their limit; with replication running at its own limit, a pull on the same host gets the rest of the
// download limit; `meshctl limit` changes a limit at run time and the change outlives a restart.
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, type BuiltImage } from '../helpers/oci-image.js';
import { Fleet, REGISTRY_ADDR, waitFor, type FleetHost } from './index.js';

const MB = 1e6;
const MiB = 1 << 20;

/** A mirror pull of one blob through `host`'s registry: bytes per second, as curl measured it. */
async function pullRate(host: FleetHost, repo: string, digest: string): Promise<number> {
  const out = await host.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', `http://${REGISTRY_ADDR}/v2/${repo}/blobs/${digest}`], { timeoutMs: 120_000 });
  const [status, bytes, seconds] = out.trim().split(' ').map(Number);
  expect(status).toBe(200);
  return bytes / seconds;
}

describe('bandwidth limits', () => {
  let fleet: Fleet;
  const images: BuiltImage[] = [];
  const image = (sizes: number[]) => {
    const built = buildImage({ layerSizes: sizes, tag: '1' });
    images.push(built);
    return built;
  };

  beforeAll(async () => {
    fleet = await Fleet.up(4, {
      waitFor: 'full-mesh',
      meshdArgs: (i) => ({
        1: ['--upload-limit', '4MB', '--replicate', 'none'],
        2: ['--download-limit', '8MB', '--replication-limit', '3MB'],
        3: ['--download-limit', '4MB', '--replicate', 'none'],
      })[i] ?? ['--replicate', 'none'],
    });
  }, 300_000);

  afterAll(async () => {
    await fleet?.down();
    for (const built of images) rmSync(built.dir, { recursive: true, force: true });
  });

  const heldBy = async (holder: FleetHost, asker: FleetHost, built: BuiltImage, repo: string) => {
    await holder.loadImage(built, { repo: `docker.io/library/${repo}` });
    await waitFor(`${asker.name} to see ${holder.name} holding ${repo}`, async () =>
      (await asker.whoHas(built.layers[0].digest)).some((p) => p.id === holder.peerId));
  };

  it('keeps a download and an upload within 10 % of their limits', async () => {
    const [h1, , h3, h4] = fleet.hosts;
    const fromH4 = image([16 * MiB]);
    await heldBy(h4, h3, fromH4, 'down');
    const down = await pullRate(h3, 'down', fromH4.layers[0].digest);
    expect(down / (4 * MB)).toBeGreaterThan(0.9);
    expect(down / (4 * MB)).toBeLessThan(1.1);

    const fromH1 = image([16 * MiB]);
    await heldBy(h1, h4, fromH1, 'up');
    const up = await pullRate(h4, 'up', fromH1.layers[0].digest);
    expect(up / (4 * MB)).toBeGreaterThan(0.9);
    expect(up / (4 * MB)).toBeLessThan(1.1);
  });

  it('leaves a pull the rest of the download limit while replication runs at its own', async () => {
    const [, h2, h3, h4] = fleet.hosts;
    const pulled = image([20 * MiB]);
    await heldBy(h3, h2, pulled, 'foreground');
    // A push to h4 that h2 replicates (the others' policy is none): 30 MiB at 3 MB/s, about 10 s.
    const pushed = image([10 * MiB, 10 * MiB, 10 * MiB]);
    const started = performance.now();
    await h4.skopeo(['copy', '--dest-tls-verify=false', `oci:${pushed.dir}:1`, `docker://${REGISTRY_ADDR}/background:1`]);
    await waitFor('h2 to start replicating', async () => (await h2.http('/_mesh/v1/images?mesh=1')).body.includes('"fetching":[{'));
    const foreground = await pullRate(h2, 'foreground', pulled.layers[0].digest);
    expect(foreground / (5 * MB), `the pull got ${(foreground / MB).toFixed(2)} MB/s of the 5 left`).toBeGreaterThan(0.9);
    // Its own records: the registry would also answer by resolving the name through the mesh.
    await waitFor('h2 to hold the replicated image', async () => (await h2.ctr(['images', 'ls', '-q'])).includes('docker.io/library/background:1'), { timeoutMs: 60_000, intervalMs: 100 });
    const replicated = pushed.layers.reduce((n, l) => n + l.size, 0) / ((performance.now() - started) / 1000);
    expect(replicated / (3 * MB), `replication ran at ${(replicated / MB).toFixed(2)} MB/s`).toBeLessThan(1.1);
    expect(replicated / (3 * MB)).toBeGreaterThan(0.7);
  });

  it('changes a limit at run time with meshctl limit, and keeps it across a restart', async () => {
    const h4 = fleet.hosts[3];
    const set = await h4.meshctl(['--json', 'limit', '--download', '2MB']);
    expect(JSON.parse(set.stdout)).toEqual({ download: 2 * MB });
    await h4.restartMeshd();
    const shown = await h4.meshctl(['limit']);
    expect(shown.stdout).toMatch(/download\s+2 MB\/s/);
    expect(shown.stdout).toMatch(/upload\s+none/);
  });
});
