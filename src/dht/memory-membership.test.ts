import { describe, expect, it } from 'vitest';
import { MemoryMembership } from './memory-membership.js';
import { MemoryMesh } from './memory-router.js';

describe('the in-memory twin of Membership', () => {
  const info = (name: string) => ({ name, labels: {}, dataPlanePort: 5001 });

  it('names the holders of a key other than itself, as data planes, and only members with one', async () => {
    const mesh = new MemoryMesh();
    const [a, b, c] = ['a', 'b', 'c'].map((id) => mesh.join({ id, info: info(id) }));
    const planes = new Map([['a', 'http://a:5001'], ['b', 'http://b:5001']]);
    const membership = new MemoryMembership(mesh, a, planes);
    for (const r of [a, b, c]) r.announce({ add: ['sha256:k'] });
    expect(membership.self).toBe('a');
    expect(await membership.holders('sha256:k', AbortSignal.timeout(1000))).toEqual([{ id: 'b', url: 'http://b:5001', rttMs: 0 }]);
    expect(membership.dataPlaneOf('c')).toBeUndefined();
    expect(membership.peers().map((p) => p.id).sort()).toEqual(['b', 'c']);
  });

  it('gathers the inventories the other members serve', async () => {
    const mesh = new MemoryMesh();
    const [a, b] = ['a', 'b'].map((id) => new MemoryMembership(mesh, mesh.join({ id, info: info(id) })));
    await a.serveInventory(async () => ({ name: 'a', keys: 3, images: [] }));
    await b.serveInventory(async () => ({ name: 'b', keys: 1, images: [{ name: 'docker.io/library/app:1', digest: 'sha256:d' }] }));
    const seen = await a.inventories();
    expect([...seen.keys()]).toEqual(['b']);
    expect(seen.get('b')?.images).toHaveLength(1);
  });

  it("tells of members already there and of those that come, and gives one member's inventory", async () => {
    const mesh = new MemoryMesh();
    const [a, b, c] = ['a', 'b', 'c'].map((id) => new MemoryMembership(mesh, mesh.join({ id, info: info(id) })));
    await a.serveInventory(async () => ({ name: 'a', keys: 0, images: [] }));
    const seenByB: string[] = [];
    b.onMember((id) => seenByB.push(id));
    expect(seenByB).toEqual(['a']);
    await c.serveInventory(async () => ({ name: 'c', keys: 0, images: [] }));
    await b.serveInventory(async () => ({ name: 'b', keys: 0, images: [] }));
    expect(seenByB).toEqual(['a', 'c']);
    expect((await b.inventoryOf('c'))?.name).toBe('c');
    expect(await b.inventoryOf('nobody')).toBeUndefined();
  });
});
