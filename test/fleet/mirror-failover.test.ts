// The peer serving a large blob dies (SIGKILL) mid-transfer: the pull still completes, from the
// other holder, with the right digest. Shaped links make the transfer slow enough to kill.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, type BuiltImage } from '../helpers/oci-image.js';
import { Fleet, waitFor } from './index.js';

const MiB = 1 << 20;

describe('mirror failover between real hosts', () => {
  let fleet: Fleet;
  let image: BuiltImage;

  beforeAll(async () => {
    fleet = await Fleet.up(3, { reconcileInterval: '1s', waitFor: 'full-mesh' });
    image = buildImage({ layerSizes: [40 * MiB], tag: '1' });
  }, 180_000);
  afterAll(async () => {
    await fleet?.down();
    if (image) rmSync(image.dir, { recursive: true, force: true });
  });

  it('completes a pull from the other holder when the serving peer is killed mid-blob', async () => {
    const [h1, h2, h3] = fleet.hosts;
    const layer = image.layers[0].digest;
    const name = await h1.loadImage(image);
    await h2.loadImage(image);
    // The name goes out with the image's content: both holders of it hold the layer, announced.
    await waitFor('h3 to know both holders of the image', async () => {
      const ids = (await h3.whoHas(name)).map((p) => p.id);
      return ids.includes(h1.peerId) && ids.includes(h2.peerId);
    });
    // 40 MiB at 80 Mbit/s: about 4 s per holder, time enough to kill the first mid-way.
    await h1.shape({ rateMbit: 80 });
    await h2.shape({ rateMbit: 80 });

    const hosts = join(h3.dir, 'certs.d');
    mkdirSync(join(hosts, '_default'), { recursive: true });
    writeFileSync(join(hosts, '_default', 'hosts.toml'), 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:5000"]\n  capabilities = ["pull", "resolve"]\n');
    const pull = h3.spawn('ctr', ['--address', h3.containerdSocket, 'images', 'pull', '--hosts-dir', hosts, name]);
    try {
      const serving = await waitFor('h3 to start fetching the layer from a peer', () =>
        h3.logLines().find((l) => l.msg === 'peer transfer started' && l.digest === layer)?.peer as string | undefined);
      await new Promise((r) => setTimeout(r, 1000));
      const victim = serving === h1.peerId ? h1 : h2;
      const other = victim === h1 ? h2 : h1;
      await victim.killMeshd('SIGKILL');

      await waitFor('the pull on h3 to complete', async () => (await h3.ctr(['images', 'ls', '-q'])).includes(name), { timeoutMs: 60_000 });
      expect(await h3.ctr(['images', 'ls'])).toContain(image.digest);
      const fetched = h3.logLines().find((l) => l.msg === 'fetched from the mesh' && l.digest === layer);
      expect(fetched?.from).toEqual([victim.peerId, other.peerId]);
      // The second holder continued from where the first stopped, not from the start.
      const resumed = h3.logLines().find((l) => l.msg === 'peer transfer started' && l.digest === layer && l.peer === other.peerId);
      expect(resumed?.offset).toBeGreaterThan(0);
      expect(await h3.ctr(['content', 'ls'])).toContain(layer);
    } finally {
      await pull.stop();
    }
  }, 180_000);
});
