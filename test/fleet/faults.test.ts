// The harness's fault tools on a 4-host fleet, each with what a user of the mesh would notice.
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, type BuiltImage } from '../helpers/oci-image.js';
import { waitFor } from '../helpers/wait.js';
import { Fleet } from './fleet.js';
import { REGISTRY_ADDR } from './index.js';
import type { FleetHost } from './host.js';
import type { WhoHasAnswer } from '../../src/api/admin-types.js';

const peerIds = async (h: FleetHost) => (await h.peers()).map((p) => p.id);

describe('fault tools on a 4-host fleet', () => {
  let fleet: Fleet | undefined;
  let image: BuiltImage | undefined;
  let h1: FleetHost, h2: FleetHost, h3: FleetHost, h4: FleetHost;
  let name: string;

  /** Takes the host off the network and waits until it and the others have dropped each other. */
  async function cutOff(host: FleetHost): Promise<void> {
    await host.disconnect();
    // Nothing closes the TCP connections: liveness pings have to go unanswered.
    for (const h of fleet!.hosts.filter((o) => o !== host)) {
      await waitFor(`${h.name} to drop the disconnected ${host.name}`, async () => !(await peerIds(h)).includes(host.peerId), { timeoutMs: 45_000, intervalMs: 1000 });
    }
    await waitFor(`${host.name} to drop everyone`, async () => (await peerIds(host)).length === 0, { timeoutMs: 30_000, intervalMs: 1000 });
  }

  beforeAll(async () => {
    fleet = await Fleet.up(4, { waitFor: 'full-mesh' });
    [h1, h2, h3, h4] = fleet.hosts;
  });
  afterAll(async () => {
    await fleet?.down();
    if (image) rmSync(image.dir, { recursive: true, force: true });
  });

  it('killMeshd: peers drop the host; startMeshd brings it back with the same peer id; restartMeshd stops cleanly', async () => {
    const id = h4.peerId;
    await h4.killMeshd('SIGKILL');
    for (const h of [h1, h2, h3]) await waitFor(`${h.name} to drop h4`, async () => !(await peerIds(h)).includes(id));
    await expect(h4.http('/v2/', { timeoutMs: 2000 })).rejects.toThrow(/curl/);

    await h4.startMeshd();
    expect(h4.peerId).toBe(id);
    await fleet!.waitForMesh();

    const pid = h4.meshdPid;
    await h4.restartMeshd(); // SIGTERM, then the same data dir
    expect(h4.meshdPid).not.toBe(pid);
    expect(h4.peerId).toBe(id);
    const log = await h4.exec('cat', [h4.meshdLog]);
    expect(log).toContain('"meshd stopped"'); // SIGTERM let it shut down cleanly
    await fleet!.waitForMesh();
  });

  // Nothing is held yet: no host fetches what it missed, no lookup of holders dials a peer; only the roster brings hosts
  // together. Here both are still connected to the others, and in a fleet within the cap nobody announces: only the
  // redial of a lost member helps.
  it('a path lost between two hosts: each drops the other; once the path is back they connect again', async () => {
    const blackhole = (op: 'add' | 'del') => h3.exec('ip', ['route', op, 'blackhole', `${h2.address}/32`]);
    await blackhole('add'); // h3's packets to h2 go nowhere: dials fail both ways
    try {
      await waitFor('h2 and h3 to drop each other', async () =>
        !(await peerIds(h2)).includes(h3.peerId) && !(await peerIds(h3)).includes(h2.peerId), { timeoutMs: 60_000, intervalMs: 1000 });
      expect((await peerIds(h1)).sort()).toEqual([h2, h3, h4].map((h) => h.peerId).sort()); // the others keep both
      // h2 still hears of h3 from the others: a member, shown as not connected.
      expect((await h2.meshctl(['peers'])).stdout).toMatch(new RegExp(`${h3.peerId}\\s+h3\\s+not connected`));
    } finally {
      await blackhole('del');
    }
    await fleet!.waitForMesh({ timeoutMs: 80_000 }); // the redial comes with the next period (60 s, jittered ±10 %)
  }, 160_000);

  it('disconnect with nothing missed: back on the network, the host joins again and every peer sees it', async () => {
    await cutOff(h3);
    await h3.reconnect();
    await fleet!.waitForMesh({ timeoutMs: 45_000 }); // h3's bootstrap dialer calls h1 again (its retries back off up to 30 s)
  }, 120_000);

  // Held from here on: a host that fetches what it missed, or a lookup of holders, dials peers too.
  describe('with an image only h2 holds', () => {
    beforeAll(async () => {
      image = buildImage({ layerSizes: [50_000, 80_000], tag: '1' });
      name = await h2.loadImage(image); // straight into h2's containerd
      await waitFor(`h1 to learn that h2 holds ${name}`, async () => (await h1.whoHas(name)).some((p) => p.id === h2.peerId));
    });

    it('disconnect: the others lose the host, and it loses them; reconnect: the mesh heals', async () => {
      await cutOff(h3);
      expect((await h1.whoHas(name)).map((p) => p.name)).toEqual(['h2']); // the rest of the fleet still answers
      // A push while h3 is cut off: its gossip cannot reach h3.
      const pushed = buildImage({ layerSizes: [60_000], tag: 'cut' });
      try {
        await h1.skopeo(['copy', `oci:${pushed.dir}:cut`, `docker://${REGISTRY_ADDR}/app:cut`, '--dest-tls-verify=false']);
        const holds = async (h: FleetHost) => (await h.ctr(['images', 'ls', '-q'])).split('\n').includes('docker.io/library/app:cut');
        await waitFor('h2 to copy the push', () => holds(h2));

        await h3.reconnect();
        await fleet!.waitForMesh({ timeoutMs: 60_000 }); // h3's bootstrap dialer calls h1 again (its retries back off up to 30 s)
        expect((await h3.whoHas(name)).map((p) => p.id)).toContain(h2.peerId);
        await waitFor('h3 to copy the push it missed while cut off', () => holds(h3), { timeoutMs: 30_000 });
      } finally {
        rmSync(pushed.dir, { recursive: true, force: true });
      }
    }, 150_000); // the waits above: about 25 s to drop h3, then up to 60 s to heal

    it("pause: the paused meshd answers nothing, the others still answer who-has; resume: it answers again", async () => {
      h3.pauseMeshd();
      try {
        await expect(h3.http('/v2/', { timeoutMs: 1000 })).rejects.toThrow(/curl/);
        for (const asker of [h1, h4]) {
          // meshd's own answer, timed without meshctl's start (6 s of a 10.9 s who-has on a loaded CI machine).
          const started = Date.now();
          const res = await asker.http(`/_mesh/v1/who-has?key=${encodeURIComponent(name)}`);
          const elapsed = Date.now() - started;
          expect((JSON.parse(res.body) as WhoHasAnswer).providers.map((p) => p.id), `${asker.name} asking with h3 paused`).toContain(h2.peerId);
          // The lookup and the names asked of peers give up on a peer after 5 s, at once; a hang would be libp2p's own timeouts, 30 s and more.
          expect(elapsed, 'who-has with a hung peer').toBeLessThan(10_000);
        }
      } finally {
        h3.resumeMeshd();
      }
      expect((await h3.http('/v2/')).status).toBe(200);
      expect((await h3.whoHas(name)).map((p) => p.id)).toContain(h2.peerId);
      await fleet!.waitForMesh();
    });

    it('restartContainerd: meshd on the host keeps serving, and ctr sees old and new images', async () => {
      const before = h2.containerdPid;
      await h2.restartContainerd();
      expect(h2.containerdPid).not.toBe(before);

      expect((await h2.http('/v2/')).status).toBe(200);
      const manifest = await waitFor('h2 to serve its manifest from the restarted containerd', async () => {
        const res = await h2.http('/v2/app/manifests/1');
        return res.status === 200 ? res : undefined;
      }, { timeoutMs: 15_000 });
      expect(JSON.parse(manifest.body).layers).toHaveLength(2);
      // A push after the restart lands in the new containerd.
      await h2.skopeo(['copy', `oci:${image!.dir}:1`, 'docker://127.0.0.1:5000/app:2', '--dest-tls-verify=false']);
      const images = (await h2.ctr(['images', 'ls', '-q'])).split('\n');
      expect(images).toEqual(expect.arrayContaining(['docker.io/library/app:1', 'docker.io/library/app:2']));
    });

    // meshd subscribes to containerd's events again after the restart: no wait for the next reconcile.
    it('restartContainerd: a push made after the restart is announced at once', async () => {
      await waitFor('h1 to learn of the tag pushed after the restart', async () => (await h1.whoHas('docker.io/library/app:2')).some((p) => p.id === h2.peerId), { timeoutMs: 5_000 });
    });

    it('a host whose containerd was down when a push came copies it once containerd is back', async () => {
      const holds = async (h: FleetHost) => (await h.ctr(['images', 'ls', '-q'])).split('\n').includes('docker.io/library/app:late');
      const pushed = buildImage({ layerSizes: [70_000], tag: 'late' });
      await h4.stopContainerd();
      try {
        await h1.skopeo(['copy', `oci:${pushed.dir}:late`, `docker://${REGISTRY_ADDR}/app:late`, '--dest-tls-verify=false']);
        await waitFor('h3 to copy the push', () => holds(h3));
        await new Promise((r) => setTimeout(r, 1_000)); // h4's copy fails meanwhile: its store does not answer
      } finally {
        await h4.startContainerd();
        rmSync(pushed.dir, { recursive: true, force: true });
      }
      // The push is known on h4 now: neither its gossip nor a catch-up brings it again, only h4's retry (30 s).
      await waitFor('h4 to copy the push it failed to', () => holds(h4), { timeoutMs: 45_000 });
    }, 90_000);
  });
});
