// Push once, have it everywhere: an image pushed to one host of a six-host fleet ends up, verified, in
// the containerd of every host whose replication policy takes it, and nowhere else. While it spreads,
// `meshctl ls --mesh` shows who is still fetching; a push may carry its own policy; a host dying while it
// feeds a stripe of the layers to others leaves them to take the rest of that stripe from other holders; a
// host that starts while a push spreads takes it too, the others not waiting for it; a host restarted while it
// copies a push makes the copy once back; a host that was down
// during a push takes it when it is back, and a copy removed on a host stays removed.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, type BuiltImage } from '../helpers/oci-image.js';
import { feedersOf, takerOrder } from '../../src/node/replication-plan.js';
import { Fleet, REGISTRY_ADDR, waitFor, type FleetHost } from './index.js';
import { fetchedFrom, fetchingOf, holdsWhole } from './holdings.js';

const MiB = 1 << 20;

/** Host 5 is a database host, host 6 takes nothing; the rest are web hosts. */
const roles = (i: number) => (i === 6 ? ['--replicate', 'none'] : ['--label', i === 5 ? 'role=db' : 'role=web']);

/** curl arguments that PUT `image`'s manifest as app:`tag` on the host's registry, with the header pussh --replicate sends. */
function putWithPolicy(image: BuiltImage, tag: string, policy: string): string[] {
  const manifest = join(image.dir, 'blobs', 'sha256', image.digest.slice('sha256:'.length));
  const mediaType = image.blobs.find((b) => b.digest === image.digest)!.mediaType;
  return ['-s', '-X', 'PUT', '-H', `content-type: ${mediaType}`, '-H', `x-layermesh-replicate: ${policy}`, '--data-binary', `@${manifest}`,
    `http://${REGISTRY_ADDR}/v2/app/manifests/${tag}`];
}

describe('replication of a push through the fleet', () => {
  let fleet: Fleet;
  let image: BuiltImage;

  beforeAll(async () => {
    fleet = await Fleet.up(6, { meshdArgs: roles, waitFor: 'full-mesh' });
    image = buildImage({ layerSizes: [12 * MiB, 8 * MiB, 4 * MiB, 256 * 1024], tag: '1' });
  }, 240_000);
  afterAll(async () => {
    await fleet?.down();
    if (image) rmSync(image.dir, { recursive: true, force: true });
  });

  it('copies a push to every host whose policy takes it, with identical digests, showing progress meanwhile', async () => {
    const [h1, ...others] = fleet.hosts;
    const name = 'docker.io/library/app:1';
    // Slow links, so that the copies are still under way when `ls --mesh` looks.
    for (const h of fleet.hosts) await h.shape({ rateMbit: 100 });
    await h1.skopeo(['copy', `oci:${image.dir}:1`, `docker://${REGISTRY_ADDR}/app:1`, '--dest-tls-verify=false']);

    const seen = await waitFor('ls --mesh to show hosts still fetching the image', async () => {
      const fetching = await fetchingOf(h1, name);
      return fetching.some((f) => f.bytes < f.total) ? fetching : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    const total = image.layers.reduce((n, l) => n + l.size, 0) + image.blobs.find((b) => b.mediaType.includes('config'))!.size;
    // Hosts that have not read the manifest yet report 0 of 0; the others the image's whole size.
    expect(seen.filter((f) => f.total > 0).map((f) => f.total)).toEqual(seen.filter((f) => f.total > 0).map(() => total));

    const takers = others.filter((h) => h.index !== 6);
    for (const h of takers) await waitFor(`${h.name} to hold the whole image`, () => holdsWhole(h, image, name), { timeoutMs: 60_000 });
    for (const h of fleet.hosts) await h.unshape();

    // Every taker announces it, and ls --mesh lists the five complete copies and nobody fetching.
    const rows = await waitFor('ls --mesh to list every copy', async () => {
      const all = JSON.parse((await others[0].meshctl(['--json', 'ls', '--mesh'])).stdout) as { name: string; nodes: { name: string }[]; fetching: unknown[] }[];
      const row = all.find((r) => r.name === name);
      return row && row.nodes.length === 5 && row.fetching.length === 0 ? row : undefined;
    });
    expect(rows.nodes.map((n) => n.name).sort()).toEqual(fleet.hosts.filter((h) => h.index !== 6).map((h) => h.name).sort());

    // The `none` host took nothing: no image, no blob.
    const h6 = fleet.hosts[5];
    expect(await h6.ctr(['images', 'ls', '-q'])).not.toContain(name);
    const content = await h6.ctr(['content', 'ls', '-q']);
    expect(image.blobs.filter((b) => content.includes(b.digest))).toEqual([]);
  });

  it('lets a push carry its own policy: only the hosts it selects copy it', async () => {
    const [h1] = fleet.hosts;
    const name = 'docker.io/library/app:web-only';
    // The same manifest under a new tag, pushed with the header pussh --replicate sends.
    expect(await h1.exec('curl', ['-w', '%{http_code}', '-o', '/dev/null', ...putWithPolicy(image, 'web-only', 'label.role=web,name=h2,name=h3')])).toBe('201');
    const [, h2, h3, h4, h5, h6] = fleet.hosts;
    for (const h of [h2, h3]) await waitFor(`${h.name} to copy the web-only push`, () => holdsWhole(h, image, name), { timeoutMs: 60_000 });
    // h4 is a web host but not named; h5 is not a web host; h6's own `none` is replaced by the push's policy, which does not select it.
    await new Promise((r) => setTimeout(r, 2000));
    for (const h of [h4, h5, h6]) expect(await h.ctr(['images', 'ls', '-q'])).not.toContain(name);

    const bad = await h1.exec('curl', putWithPolicy(image, 'bad-policy', 'role=web'));
    expect(JSON.parse(bad).errors[0]).toMatchObject({ code: 'MANIFEST_INVALID' });
    expect(bad).toContain('label.KEY=GLOB');
  });

  it('finishes on every other host when a host feeding a stripe to others dies half-way', async () => {
    const [h1] = fleet.hosts;
    const name = 'docker.io/library/app:2';
    // A first layer long enough (about 4 s at 50 Mbit/s) that the kill lands in it even when this loaded machine
    // takes a second or two between seeing the progress and killing.
    const image2 = buildImage({ layerSizes: [24 * MiB, 6 * MiB, 6 * MiB], tag: '2' });
    // Every taker computes the same plan (src/node/replication-plan.ts): the first of the image's order takes
    // stripe 0 from h1 and feeds it to others, `fed` among them.
    const takers = fleet.hosts.filter((h) => h.index !== 1 && h.index !== 6);
    const order = takerOrder(image2.digest, takers.map((h) => h.peerId));
    const first = takers.find((h) => h.peerId === order[0])!;
    const rest = takers.filter((h) => h !== first);
    const fed = rest.find((h) => feedersOf(order, h1.peerId, h.peerId)[0] === first.peerId)!;
    try {
      for (const h of fleet.hosts) await h.shape({ rateMbit: 50 });
      await h1.skopeo(['copy', `oci:${image2.dir}:2`, `docker://${REGISTRY_ADDR}/app:2`, '--dest-tls-verify=false']);
      await waitFor(`${fed.name} to be taking stripe 0 from ${first.name}`, async () =>
        (await fetchingOf(h1, name)).some((f) => f.name === fed.name && f.bytes > 2 * MiB), { timeoutMs: 30_000, intervalMs: 100 });
      await first.killMeshd();
      for (const h of rest) await waitFor(`${h.name} to hold the whole image`, () => holdsWhole(h, image2, name), { timeoutMs: 60_000 });
      // `fed` lost that stream in the middle of a layer and took the rest of the stripe from another holder.
      expect(readFileSync(fed.meshdLog, 'utf8')).toMatch(/"peer":"[^"]+","offset":[1-9]\d*,"err":"the sequence from [^"]+ broke/);
    } finally {
      for (const h of fleet.hosts) await h.unshape();
      if (!first.meshdPid) await first.startMeshd();
      rmSync(image2.dir, { recursive: true, force: true });
    }
  });

  it('takes in a host that starts while a push spreads, without the others waiting for it', async () => {
    const [h1, h2, h3, h4, h5] = fleet.hosts;
    const name = 'docker.io/library/app:joined';
    // Long enough at 16 Mbit/s (13 s) that h4 is up well before the others are done.
    const image4 = buildImage({ layerSizes: [16 * MiB, 4 * MiB, 4 * MiB], tag: 'joined' });
    const upFirst = [h2, h3, h5];
    try {
      await h4.killMeshd('SIGTERM');
      await waitFor('h1 to drop h4', async () => !(await h1.peers()).some((p) => p.id === h4.peerId));
      for (const h of fleet.hosts) await h.shape({ rateMbit: 16 });
      await h1.skopeo(['copy', `oci:${image4.dir}:joined`, `docker://${REGISTRY_ADDR}/app:joined`, '--dest-tls-verify=false']);
      await waitFor('a host to be taking the push', async () =>
        (await fetchingOf(h1, name)).some((f) => f.bytes > 2 * MiB), { timeoutMs: 30_000, intervalMs: 100 });
      await h4.startMeshd();
      const spreading = await Promise.all(upFirst.map(async (h) => !(await holdsWhole(h, image4, name))));
      expect(spreading, 'h2, h3 and h5 still copying when h4 is up').toContain(true);
      for (const h of [...upFirst, h4]) await waitFor(`${h.name} to hold the whole image`, () => holdsWhole(h, image4, name), { timeoutMs: 90_000 });

      const lines = (h: FleetHost, msg: string) => readFileSync(h.meshdLog, 'utf8').split('\n')
        .filter((l) => l.includes(`"${msg}"`) && l.includes(image4.digest)).map((l) => JSON.parse(l) as { takers: number; plannedBy: string });
      // h4 heard of the push from a member once it was back, and planned its copy itself.
      expect(readFileSync(h4.meshdLog, 'utf8').split('\n').filter((l) => l.includes('"following pushes this node missed"') && l.includes(name))).toHaveLength(1);
      expect(lines(h4, 'copying a push')[0]).toMatchObject({ plannedBy: 'this node' });
      // The others kept the plan the push's node sent, which did not name h4, and took nothing from it.
      for (const h of upFirst) {
        expect(lines(h, 'copying a push')[0], `${h.name}'s plan`).toMatchObject({ takers: 3, plannedBy: 'the node pushed to' });
        for (const blob of image4.layers) expect(fetchedFrom(h, blob.digest), `${h.name} took ${blob.digest} from`).not.toContain(h4.peerId);
      }
    } finally {
      for (const h of fleet.hosts) await h.unshape();
      if (!h4.meshdPid) await h4.startMeshd();
      rmSync(image4.dir, { recursive: true, force: true });
    }
  });

  it('makes a copy that a restart of its host cut off, once the host is back', async () => {
    const [h1, h2] = fleet.hosts;
    const name = 'docker.io/library/app:restarted';
    const image5 = buildImage({ layerSizes: [6 * MiB, 2 * MiB], tag: 'restarted' });
    try {
      await h2.shape({ rateMbit: 2 }); // 8 MiB take h2 about 35 s: still copying when it restarts
      await h1.skopeo(['copy', `oci:${image5.dir}:restarted`, `docker://${REGISTRY_ADDR}/app:restarted`, '--dest-tls-verify=false']);
      await waitFor('h2 to be copying the push', async () =>
        (await fetchingOf(h1, name)).some((f) => f.name === h2.name && f.bytes > 0), { timeoutMs: 30_000, intervalMs: 100 });
      expect(await holdsWhole(h2, image5, name)).toBe(false);
      await h2.restartMeshd();
      await h2.unshape();
      await waitFor('h2 to hold the image after its restart', () => holdsWhole(h2, image5, name), { timeoutMs: 60_000 });
      expect(h2.logLines().filter((l) => l.msg === 'copying a push' && l.digest === image5.digest).map((l) => l.resumed)).toEqual([undefined, true]);
    } finally {
      await h2.unshape();
      rmSync(image5.dir, { recursive: true, force: true });
    }
  });

  it('catches up a host that was down during pushes, each push under its own policy, and brings back no copy a host removed', async () => {
    const [h1, h2, h3, h4] = fleet.hosts;
    const image3 = buildImage({ layerSizes: [3 * MiB, 1 * MiB], tag: 'late' });
    const name = 'docker.io/library/app:late';
    const named = 'docker.io/library/app:late-h3';
    try {
      await h3.killMeshd('SIGTERM');
      await h1.skopeo(['copy', `oci:${image3.dir}:late`, `docker://${REGISTRY_ADDR}/app:late`, '--dest-tls-verify=false']);
      // The same image under a second name, pushed with a policy that selects h3 alone.
      expect(await h1.exec('curl', ['-w', '%{http_code}', '-o', '/dev/null', ...putWithPolicy(image3, 'late-h3', 'name=h3')])).toBe('201');
      for (const h of [h2, h4]) await waitFor(`${h.name} to copy the push`, () => holdsWhole(h, image3, name), { timeoutMs: 60_000 });
      // h4's operator removes its copy; it restarts while h3 is still down.
      expect((await h4.meshctl(['rm', name])).code).toBe(0);
      await h4.restartMeshd();

      await h3.startMeshd();
      await waitFor('h3 to copy the push it missed', () => holdsWhole(h3, image3, name), { timeoutMs: 60_000 });
      await waitFor("h3 to copy the push it missed whose policy selects it", () => holdsWhole(h3, image3, named), { timeoutMs: 30_000 });
      expect(readFileSync(h3.meshdLog, 'utf8')).toContain('following pushes this node missed');
      // h4 knows it removed app:late and is not selected for app:late-h3: it takes neither, restarted and reconnected.
      await fleet.waitForMesh();
      await new Promise((r) => setTimeout(r, 3000));
      const h4Images = await h4.ctr(['images', 'ls', '-q']);
      expect(h4Images).not.toContain(name);
      expect(h4Images).not.toContain(named);
    } finally {
      if (!h3.meshdPid) await h3.startMeshd();
      rmSync(image3.dir, { recursive: true, force: true });
    }
  });
});
