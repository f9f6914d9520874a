// One truth per tag: two hosts of a four-host fleet are pushed different images under one name at the same
// moment (their manifests PUT at once), ten rounds over. After each round, within 10 s, every host's registry names the image after the
// same manifest (the newest push's) and its containerd holds that image; `meshctl who-has` shows each
// holder with the digest and the push it follows.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WhoHasEntry } from '../../src/api/admin-types.js';
import { buildImage, type BuiltImage } from '../helpers/oci-image.js';
import { Fleet, REGISTRY_ADDR, type FleetHost } from './index.js';

const ROUNDS = 10;
/** What it catches is a split that lasts: alone a round takes 1–1.5 s, beside the 10-host stripes fleet on the same 2 cores (as CI may run them) 4–8 s. */
const CONVERGE_MS = 10_000;
const NAME = 'docker.io/library/same:1';

const blobPath = (image: BuiltImage, digest: string) => join(image.dir, 'blobs', 'sha256', digest.slice('sha256:'.length));

/** curl inside the host; its HTTP status. */
const curl = (host: FleetHost, args: string[]) => host.exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', ...args]);

/** The digest the host's registry names `same:1` after, as a client pulling it sees it. */
async function resolved(host: FleetHost): Promise<string | undefined> {
  const out = await host.exec('curl', ['-sS', '-I', '--max-time', '5', '-H', 'accept: application/vnd.oci.image.manifest.v1+json',
    `http://${REGISTRY_ADDR}/v2/same/manifests/1`]);
  return /^docker-content-digest:\s*(\S+)/im.exec(out)?.[1];
}

/** The digest the host's containerd has `same:1` under. */
async function held(host: FleetHost): Promise<string | undefined> {
  const line = (await host.ctr(['images', 'ls'])).split('\n').find((l) => l.startsWith(`${NAME} `));
  return /sha256:[0-9a-f]{64}/.exec(line ?? '')?.[0];
}

describe('simultaneous pushes of one name', () => {
  let fleet: Fleet;
  const images: BuiltImage[] = [];

  beforeAll(async () => {
    fleet = await Fleet.up(4, { meshdArgs: ['--replicate', 'all'], waitFor: 'full-mesh' });
  }, 240_000);
  afterAll(async () => {
    await fleet?.down();
    for (const image of images) rmSync(image.dir, { recursive: true, force: true });
  });

  it(`converge on one digest on every host within ${CONVERGE_MS / 1000} s, ${ROUNDS} rounds out of ${ROUNDS}`, { timeout: 300_000 }, async () => {
    const rounds: { round: number; pushedTo: string[]; apart: number; winner: string; ms: number }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // A different pair of hosts each round, each with an image of its own.
      const pair = [fleet.hosts[round % 4], fleet.hosts[(round + 1 + Math.floor(round / 4)) % 4]];
      const built = pair.map((_, i) => buildImage({ layerSizes: [512 << 10], tag: `r${round}-${i}` }));
      images.push(...built);
      // Each host gets its image's blobs first; then both manifests are PUT at the same moment, so that the two
      // pushes of the name really race (skopeo's would land up to a second apart on this loaded machine).
      await Promise.all(pair.map(async (h, i) => {
        for (const blob of built[i].blobs.filter((b) => b.digest !== built[i].digest)) {
          expect(await curl(h, ['-X', 'POST', '--data-binary', `@${blobPath(built[i], blob.digest)}`,
            `http://${REGISTRY_ADDR}/v2/same/blobs/uploads/?digest=${blob.digest}`])).toBe('201');
        }
      }));
      const finished = await Promise.all(pair.map(async (h, i) => {
        expect(await curl(h, ['-X', 'PUT', '-H', 'content-type: application/vnd.oci.image.manifest.v1+json',
          '--data-binary', `@${blobPath(built[i], built[i].digest)}`, `http://${REGISTRY_ADDR}/v2/same/manifests/1`])).toBe('201');
        return performance.now();
      }));
      const pushed = Math.max(...finished);
      let last = '';
      let winner: string | undefined;
      while (performance.now() - pushed < CONVERGE_MS) {
        const seen = await Promise.all(fleet.hosts.map(async (h) => [await resolved(h), await held(h)]));
        last = JSON.stringify(seen);
        const digests = new Set(seen.flat());
        if (digests.size === 1 && built.some((b) => digests.has(b.digest))) {
          winner = [...digests][0];
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      const ms = Math.round(performance.now() - pushed);
      rounds.push({ round, pushedTo: pair.map((h) => h.name), apart: Math.round(Math.abs(finished[0] - finished[1])), winner: winner ? pair[built.findIndex((b) => b.digest === winner)].name : `split ${last}`, ms });
    }
    const report = `convergence after simultaneous pushes:\n${rounds.map((r) => `round ${r.round + 1}: pushed to ${r.pushedTo.join('+')} (${r.apart} ms apart), ${r.winner.startsWith('split') ? `still ${r.winner} after ${r.ms} ms` : `won ${r.winner}, all agreed after ${r.ms} ms`}`).join('\n')}`;
    console.log(report);
    expect(rounds.filter((r) => !r.winner.startsWith('split') && r.ms <= CONVERGE_MS), report).toHaveLength(ROUNDS);

    // Every holder, as who-has shows it, has the one digest and follows the same push.
    const digest = await held(fleet.hosts[0]);
    const holders = (await fleet.hosts[0].meshctlJson<{ providers: WhoHasEntry[] }>(['who-has', NAME])).providers;
    expect(holders).toHaveLength(4);
    for (const h of holders) expect(h).toMatchObject({ digest, push: holders[0].push });
  });
});
