import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Inventory } from '../dht/membership.js';
import type { MeshEvent } from '../dht/router.js';
import { catchUpOnJoin } from './catch-up.js';
import { NewestPushes } from './newest-pushes.js';
import { RetryTimers } from './retries.js';

const digest = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const log = pino({ level: 'silent' });

/** A member `m1` whose inventory is `images`, connecting once the catch-up is set up; the events it leads to. */
async function joining(images: Inventory['images'], pushes: NewestPushes): Promise<MeshEvent[]> {
  const followed: MeshEvent[] = [];
  let member: ((id: string) => void) | undefined;
  const asked: string[] = [];
  const membership = {
    onMember: (handler: (id: string) => void) => void (member = handler),
    inventoryOf: async (id: string) => (asked.push(id), { name: id, keys: 0, images }),
  };
  catchUpOnJoin(membership, pushes, (event) => followed.push(event), log, new RetryTimers());
  member!('m1');
  await expect.poll(() => asked).toEqual(['m1']);
  await new Promise((r) => setTimeout(r, 10));
  return followed;
}

describe('catching up on pushes missed', () => {
  it('asks a member that did not give its inventory again, a few times, then gives up', async () => {
    const followed: MeshEvent[] = [];
    let member: ((id: string) => void) | undefined;
    let asked = 0;
    const membership = {
      onMember: (handler: (id: string) => void) => void (member = handler),
      // Busy twice (inventoryOf gives undefined on a failure), then its inventory.
      inventoryOf: async (id: string) => (++asked <= 2 ? undefined : { name: id, keys: 0, images: [{ name: 'docker.io/library/missed:1', digest: digest(1), push: { clock: 7, node: id } }] }),
    };
    catchUpOnJoin(membership, new NewestPushes('self'), (event) => followed.push(event), log, new RetryTimers(), [10, 20]);
    member!('m1');
    await expect.poll(() => followed.map((e) => e.image)).toEqual(['docker.io/library/missed:1']);
    expect(asked).toBe(3);

    let failures = 0;
    catchUpOnJoin({ onMember: (handler) => handler('m2'), inventoryOf: async () => void failures++ }, new NewestPushes('self'), () => undefined, log, new RetryTimers(), [10, 20]);
    await new Promise((r) => setTimeout(r, 150));
    expect(failures).toBe(3); // the first ask and two more

    // Once the daemon stopped, nobody is asked again.
    const retries = new RetryTimers();
    let asks = 0;
    catchUpOnJoin({ onMember: (handler) => handler('m3'), inventoryOf: async () => void asks++ }, new NewestPushes('self'), () => undefined, log, retries, [10, 20]);
    await expect.poll(() => asks).toBe(1);
    retries.stop();
    await new Promise((r) => setTimeout(r, 100));
    expect(asks).toBe(1);
  });

  it("follows the pushes to a member that connects which this node does not know, with each push's own policy", async () => {
    const pushes = new NewestPushes('self');
    pushes.observe('docker.io/library/known:1', { clock: 5, node: 'm1', digest: digest(1) });
    pushes.observe('docker.io/library/newer-here:1', { clock: 9, node: 'm3', digest: digest(2) });
    const followed = await joining([
      { name: 'docker.io/library/missed:1', digest: digest(3), push: { clock: 7, node: 'm1' }, replicate: 'label.role=web' },
      { name: 'docker.io/library/missed:2', digest: digest(4), push: { clock: 8, node: 'm1' } },
      { name: 'docker.io/library/known:1', digest: digest(1), push: { clock: 5, node: 'm1' } }, // heard of already
      { name: 'docker.io/library/newer-here:1', digest: digest(5), push: { clock: 6, node: 'm1' } }, // a newer push of it is known
      { name: 'docker.io/library/other:1', digest: digest(6), push: { clock: 9, node: 'm2' } }, // m1 does not vouch for m2's push
      { name: 'docker.io/library/untracked:1', digest: digest(7) }, // tagged outside the mesh
      { name: 'docker.io/library/app:1\x1b]0;pwned\x07', digest: digest(8), push: { clock: 9, node: 'm1' } }, // no image name
      { name: 'docker.io/library/app:2', digest: 'sha256:short', push: { clock: 9, node: 'm1' } }, // no digest
      { name: 'docker.io/library/app:3', digest: digest(9), push: { clock: 9, node: 'm1' }, replicate: 'x'.repeat(2000) }, // a policy gossip refuses
    ], pushes);
    expect(followed).toEqual([
      { type: 'image-pushed', image: 'docker.io/library/missed:1', digest: digest(3), node: 'm1', clock: 7, replicate: 'label.role=web' },
      { type: 'image-pushed', image: 'docker.io/library/missed:2', digest: digest(4), node: 'm1', clock: 8 },
    ]);
  });

  it('follows nothing a member holds when this node knows every push of it', async () => {
    const pushes = new NewestPushes('self');
    pushes.observe('docker.io/library/app:1', { clock: 5, node: 'm1', digest: digest(1) });
    expect(await joining([{ name: 'docker.io/library/app:1', digest: digest(1), push: { clock: 5, node: 'm1' } }], pushes)).toEqual([]);
  });
});
