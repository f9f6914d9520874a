// The status page in a real browser: headless Chromium (Debian's) on host 1 of a 3-host fleet loads /ui while a
// push to host 1 replicates, until the image × node matrix shows every host complete; then a screenshot.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensurePackages } from '../helpers/apt.js';
import { buildImage, type BuiltImage } from '../helpers/oci-image.js';
import { Fleet, REGISTRY_ADDR, type FleetHost } from './index.js';

const MiB = 1 << 20;
const IMAGE = 'docker.io/library/app:1';

/** Chromium as the fleet's hosts run it: headless, as root (no sandbox), nothing fetched from elsewhere. */
function chromium(host: FleetHost, profile: string, args: string[]): Promise<string> {
  return host.exec('chromium', [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`,
    // Virtual time runs the page's polling (and waits for its requests) before the DOM is dumped.
    '--virtual-time-budget=3000', ...args, `http://${REGISTRY_ADDR}/ui`,
  ], { timeoutMs: 60_000 });
}

/** Each host's cell for the image in the dumped page: complete, a percentage, or –. */
function cells(dom: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of dom.matchAll(/<td class="(\w+)" data-node="([^"]+)" data-image="([^"]+)">([^<]*)<\/td>/g)) {
    if (m[3] === IMAGE) out.set(m[2], m[1]);
  }
  return out;
}

/** Whether the disk table shows the node holding the replicated image (24 MiB and its config). */
const copied = (dom: string, node: string) => new RegExp(`<td data-node="${node}" data-disk="replicated">2\\d\\.\\d MiB</td>`).test(dom);

describe('the status page', () => {
  let fleet: Fleet;
  let image: BuiltImage;
  const dir = mkdtempSync(join(tmpdir(), 'lm-ui-'));

  beforeAll(async () => {
    await ensurePackages({ chromium: 'chromium' });
    image = buildImage({ layerSizes: [12 * MiB, 8 * MiB, 4 * MiB], tag: '1' });
    fleet = await Fleet.up(3, { waitFor: 'full-mesh' });
    // Slow links, so that the replication is still under way when the page first looks.
    for (const h of fleet.hosts) await h.shape({ rateMbit: 40 });
  }, 300_000);

  afterAll(async () => {
    await fleet?.down();
    rmSync(dir, { recursive: true, force: true });
    if (image) rmSync(image.dir, { recursive: true, force: true });
  });

  it('shows each host reaching complete during a replication, and the push among recent events', async () => {
    const [h1] = fleet.hosts;
    const pushed = h1.skopeo(['copy', '--dest-tls-verify=false', `oci:${image.dir}:1`, `docker://${REGISTRY_ADDR}/app:1`]);
    const seen = new Set<string>();
    let dom = '';
    const deadline = Date.now() + 90_000;
    await pushed;
    for (;;) {
      dom = await chromium(h1, join(dir, 'profile'), ['--dump-dom']);
      const now = cells(dom);
      for (const [node, state] of now) seen.add(`${node}:${state}`);
      // Peers tell their disk totals with their inventories, counted at most every few seconds.
      if (fleet.hosts.every((h) => now.get(h.name) === 'complete') && fleet.hosts.slice(1).every((h) => copied(dom, h.name))) break;
      if (Date.now() > deadline) throw new Error(`not every host complete in time; the page showed ${[...seen].join(', ')}`);
    }
    expect(dom).toMatch(/<h1>LayerMesh <span id="node" class="mono">h1 · /);
    expect(dom).toMatch(new RegExp(`pushed</span> <span class="what">${IMAGE.replaceAll('.', '\\.')} `));
    // The disk table: what was pushed to h1 is held there as pushed, and what the others copied as replicated.
    expect(dom).toMatch(/<td data-node="h1" data-disk="pushed">2\d\.\d MiB<\/td>/);
    // Both other hosts appear as peers, with a measured round trip.
    for (const h of fleet.hosts.slice(1)) expect(dom).toMatch(new RegExp(`<td>${h.name}</td><td class="mono">[^<]+</td><td class="ok">[\\d.]+ ms</td>`));

    const shot = join(dir, 'status.png');
    await chromium(h1, join(dir, 'profile'), ['--window-size=1280,900', `--screenshot=${shot}`]);
    expect(statSync(shot).size).toBeGreaterThan(10_000);
  }, 180_000);
});
