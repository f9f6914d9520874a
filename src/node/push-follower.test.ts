import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, test, vi } from 'vitest';
import type { MeshEvent } from '../dht/router.js';
import { MemoryStore } from '../store/memory-store.js';
import { NewestPushes } from './newest-pushes.js';
import { PushFollower } from './push-follower.js';
import { parseReplicationPolicy } from '../oci/replication-policy.js';
import { takerOrder, takerTag } from './replication-plan.js';
import type { ReplicateOptions } from './replicator.js';
import { localPush } from '../../test/helpers/pushes.js';

const NAME = 'docker.io/library/same:1';
const digest = (c: string) => `sha256:${c.repeat(64)}`;
const event = (clock: number, node: string, d: string, replicate?: string): MeshEvent =>
  ({ type: 'image-pushed', image: NAME, digest: d, node, clock, ...(replicate && { replicate }) });

/**
 * A follower on `policy`, knowing members `peers`, whose replicator records what it is asked to copy (and fails
 * a copy while `fails` says so).
 */
function follower(policy: string, store = new MemoryStore(), self = 'self', peers: string[] = [], fails = (_digest: string) => false, pushes = new NewestPushes(self)) {
  const copies: { digest: string; from: string; push: unknown; order?: string[] }[] = [];
  const replicator = {
    copying: () => undefined,
    cancel: vi.fn(),
    replicate: vi.fn(async (_image: string, d: string, from: string, { push, order }: ReplicateOptions) => {
      if (fails(d)) throw new Error('containerd is not answering');
      copies.push({ digest: d, from, push, order });
    }),
  };
  const f = new PushFollower({
    store, pushes, replicator, policy: parseReplicationPolicy(policy), self: { name: self, labels: {} },
    membership: { self, peers: () => peers.map((id) => ({ id, addrs: [], info: { name: id, labels: {}, dataPlanePort: 1 } })) },
    log: pino({ level: 'silent' }), retryAfterMs: [20, 40],
  });
  const settle = (ms = 10) => new Promise((r) => setTimeout(r, ms));
  return { f, copies, pushes, settle, replicator };
}

describe('push follower', () => {
  test('a copy that failed is tried again until it is made, without the blobs its gossip carried', async () => {
    let failures = 3;
    const { f, copies, settle, replicator } = follower('all', new MemoryStore(), 'self', [], () => failures-- > 0);
    f.onEvent({ ...event(100, 'a', digest('a')), inline: { [digest('c')]: Buffer.alloc(40_000).toString('base64') } });
    await settle(200); // tries after 0, 20, 40 and 40 ms
    expect(replicator.replicate).toHaveBeenCalledTimes(4);
    expect(replicator.replicate.mock.calls.map((c) => c[3].inline !== undefined)).toEqual([true, false, false, false]);
    expect(copies.map((c) => c.digest)).toEqual([digest('a')]);
    await settle(100);
    expect(replicator.replicate).toHaveBeenCalledTimes(4);
    f.stop();
  });

  test('a failed copy is not tried again once a newer push of its name is known, nor once its image is here', async () => {
    const store = new MemoryStore();
    const { f, copies, settle, replicator } = follower('all', store, 'self', [], (d) => d === digest('a'));
    f.onEvent(event(100, 'a', digest('a')));
    await settle();
    f.onEvent(event(200, 'b', digest('b')));
    await settle(150);
    expect(replicator.replicate.mock.calls.map((c) => c[1])).toEqual([digest('a'), digest('b')]);
    expect(copies.map((c) => c.digest)).toEqual([digest('b')]);

    const held = follower('all', store, 'self', [], () => true);
    held.f.onEvent(event(300, 'c', digest('c')));
    await held.settle();
    await store.images.put({ name: NAME, target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digest('c'), size: 2 }, labels: {} });
    await held.settle(150);
    expect(held.replicator.replicate).toHaveBeenCalledTimes(1);
    expect(held.pushes.unfinishedCopies(), 'no copy left to resume after a restart').toEqual([]);
    f.stop();
    held.f.stop();
  });

  test('a copy that fails as the daemon stops is not tried again, and no push is followed after', async () => {
    const { f, settle, replicator } = follower('all', new MemoryStore(), 'self', [], () => true);
    f.onEvent(event(100, 'a', digest('a')));
    f.stop();
    f.onEvent(event(200, 'b', digest('b')));
    await settle(150);
    expect(replicator.replicate).toHaveBeenCalledTimes(1);
  });

  test('a copy that failed is not tried again once its image was removed from the mesh', async () => {
    const { f, settle, replicator } = follower('all', new MemoryStore(), 'self', [], () => true);
    f.onEvent(event(100, 'a', digest('a')));
    await settle();
    f.forget(NAME);
    await settle(150);
    expect(replicator.replicate).toHaveBeenCalledTimes(1);
    expect(replicator.cancel).toHaveBeenCalledWith(NAME);
    f.stop();
  });

  test('a copy under way when its image is removed from the mesh, failing after, is not tried again', async () => {
    let fail!: (err: Error) => void;
    const { f, settle, replicator } = follower('all');
    replicator.replicate.mockImplementationOnce(() => new Promise<void>((_resolve, reject) => (fail = reject)));
    f.onEvent(event(100, 'a', digest('a')));
    await settle();
    f.forget(NAME);
    fail(new Error('the node pushed to removed it too'));
    await settle(150);
    expect(replicator.replicate).toHaveBeenCalledTimes(1);
    // A newer push of the name is copied as any other.
    f.onEvent(event(200, 'b', digest('b')));
    await settle();
    expect(replicator.replicate).toHaveBeenCalledTimes(2);
    f.stop();
  });

  test('makes after a restart the copies it cut off or whose next try it dropped; not one made, nor one removed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'push-follower-'));
    const file = join(dir, 'pushes.json');
    const named = (image: string, e: MeshEvent): MeshEvent => ({ ...e, image: `docker.io/library/${image}:1` });
    try {
      const before = new NewestPushes('self');
      await before.persist(file, pino({ level: 'silent' }));
      const first = follower('all', new MemoryStore(), 'self', [], (d) => d === digest('a') || d === digest('d'), before);
      first.replicator.replicate.mockImplementationOnce(() => new Promise<void>(() => {})); // c: under way when the process ends
      first.f.onEvent(named('c', event(100, 'n', digest('c'))));
      first.f.onEvent(named('a', event(100, 'n', digest('a')))); // fails: its next try waits
      first.f.onEvent(named('b', event(100, 'n', digest('b')))); // copied
      first.f.onEvent(named('r', { ...event(100, 'n', digest('d')), replicate: 'name=*' })); // fails, then removed from the mesh
      await first.settle();
      first.replicator.replicate.mockImplementation(() => new Promise<void>(() => {}));
      first.f.forget('docker.io/library/r:1');
      first.f.stop();
      await before.save();

      const after = new NewestPushes('self');
      await after.persist(file, pino({ level: 'silent' }));
      const second = follower('all', new MemoryStore(), 'self', [], () => false, after);
      second.f.resumeUnfinished();
      await second.settle();
      expect(second.replicator.replicate.mock.calls.map((c) => [c[0], c[1]]).sort()).toEqual([
        ['docker.io/library/a:1', digest('a')], ['docker.io/library/c:1', digest('c')],
      ]);
      expect(after.unfinishedCopies()).toEqual([]);
      second.f.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('copies the newer of two pushes of a name, and ignores the older arriving after it', async () => {
    const { f, copies, pushes, settle } = follower('all');
    f.onEvent(event(200, 'b', digest('b')));
    f.onEvent(event(100, 'a', digest('a')));
    await settle();
    expect(copies).toEqual([{ digest: digest('b'), from: 'b', push: { clock: 200, node: 'b' }, order: ['self'] }]);
    expect(pushes.get(NAME)?.digest).toBe(digest('b'));
  });

  test('copies both when the older comes first: the newer one names the image (see TagRecords)', async () => {
    const { f, copies, settle } = follower('all');
    f.onEvent(event(100, 'a', digest('a')));
    f.onEvent(event(100, 'b', digest('b'))); // same clock: peer id b > a
    await settle();
    expect(copies.map((c) => c.digest)).toEqual([digest('a'), digest('b')]);
  });

  test('a node its policy leaves out still follows the newest push of a name it holds', async () => {
    const store = new MemoryStore();
    const target = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digest('0'), size: 2 };
    const held = follower('none', store);
    held.f.onEvent(event(100, 'a', digest('a'))); // not held yet: only remembered
    await held.settle();
    expect(held.copies).toEqual([]);
    expect(held.pushes.get(NAME)?.clock).toBe(100);
    await store.images.put({ name: NAME, target, labels: {} });
    held.f.onEvent(event(300, 'b', digest('b'), 'name=someone-else'));
    await held.settle();
    expect(held.copies.map((c) => c.digest)).toEqual([digest('b')]);
  });

  test('a local push stamped after a gossiped one is newer, and the gossiped one arriving late is ignored', async () => {
    const { f, copies, pushes, settle } = follower('all');
    pushes.observe(NAME, { clock: Date.now() + 60_000, node: 'clock-ahead', digest: digest('c') });
    const own = localPush(pushes, NAME, digest('d'));
    f.onEvent(event(own.clock, 'a', digest('a'))); // same clock, peer id a < self
    await settle();
    expect(copies).toEqual([]);
    expect(pushes.get(NAME)).toEqual(own);
  });

  test('takers whose views of the mesh differ plan on the order the node pushed to sent; without one, each on its own view', async () => {
    const members = Array.from({ length: 20 }, (_, i) => `peer-${i}`);
    const sent = takerOrder(digest('c'), members);
    const push = { ...event(100, 'origin', digest('c')), takers: sent.map(takerTag) };
    // peer-0 does not know peer-5 yet; peer-1 knows everyone.
    const a = follower('all', new MemoryStore(), 'peer-0', members.filter((id) => id !== 'peer-0' && id !== 'peer-5'));
    const b = follower('all', new MemoryStore(), 'peer-1', members.filter((id) => id !== 'peer-1'));
    for (const f of [a, b]) f.f.onEvent(push);
    await Promise.all([a.settle(), b.settle()]);
    expect(b.copies[0].order).toEqual(sent);
    expect(a.copies[0].order).toEqual(sent.map((id) => (id === 'peer-5' ? takerTag(id) : id)));
    // The same push without the list: peer-0 plans without peer-5, and everyone after it moves.
    const own = follower('all', new MemoryStore(), 'peer-0', members.filter((id) => id !== 'peer-0' && id !== 'peer-5'));
    own.f.onEvent(event(100, 'origin', digest('c')));
    await own.settle();
    expect(own.copies[0].order).toEqual(sent.filter((id) => id !== 'peer-5'));
  });
});
