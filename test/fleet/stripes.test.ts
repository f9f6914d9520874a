// Replication in stripes on real processes: a push to one host of a ten-host fleet (nine takers, more than a
// pipeline is used for) reaches every other host whole and verified, each layer of the image taken as stripes
// from the feeders that the plan every host computes (src/node/replication-plan.ts) names for it.
import { readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, type BuiltImage } from '../helpers/oci-image.js';
import { planFor } from '../../src/node/replication-plan.js';
import { Fleet, REGISTRY_ADDR, waitFor, type FleetHost } from './index.js';

const MiB = 1 << 20;
const NAME = 'docker.io/library/striped:1';

async function holdsWhole(host: FleetHost, image: BuiltImage): Promise<boolean> {
  const [images, content] = await Promise.all([host.ctr(['images', 'ls']), host.ctr(['content', 'ls', '-q'])]);
  return images.split('\n').some((l) => l.startsWith(`${NAME} `) && l.includes(image.digest))
    && image.blobs.every((b) => content.includes(b.digest));
}

/** The peers a host's meshd took a blob from, as its "fetched from the mesh" line lists them. */
function fetchedFrom(host: FleetHost, digest: string): string[] | undefined {
  for (const line of readFileSync(host.meshdLog, 'utf8').split('\n')) {
    if (!line.includes('"fetched from the mesh"') || !line.includes(digest)) continue;
    return (JSON.parse(line) as { from: string[] }).from;
  }
  return undefined;
}

describe('replication in stripes', () => {
  let fleet: Fleet;
  let image: BuiltImage;

  beforeAll(async () => {
    fleet = await Fleet.up(10, { meshdArgs: ['--replicate', 'all'], waitFor: 'full-mesh' });
    image = buildImage({ layerSizes: [6 * MiB, 3 * MiB, 100 * 1024], tag: '1' });
  }, 300_000);
  afterAll(async () => {
    await fleet?.down();
    if (image) rmSync(image.dir, { recursive: true, force: true });
  });

  it('copies a push to nine takers, each layer in stripes from the feeders of the plan', { timeout: 180_000 }, async () => {
    const [h1, ...takers] = fleet.hosts;
    await h1.skopeo(['copy', `oci:${image.dir}:1`, `docker://${REGISTRY_ADDR}/library/striped:1`, '--dest-tls-verify=false']);
    for (const h of takers) await waitFor(`${h.name} to hold the whole image`, () => holdsWhole(h, image), { timeoutMs: 90_000 });
    const layer = image.blobs.reduce((a, b) => (b.size > a.size ? b : a));
    const ids = takers.map((h) => h.peerId);
    for (const h of takers) {
      const plan = planFor(image.digest, [], h1.peerId, ids, h.peerId);
      expect(plan.feeders.length, 'nine takers are striped').toBeGreaterThan(1);
      const from = fetchedFrom(h, layer.digest);
      // Every stripe came from its feeder (a fallback would add the holder it asked instead).
      expect(new Set(from), `${h.name} took ${layer.digest} from ${from?.join(', ')}`).toEqual(new Set(plan.feeders));
    }
  });
});
