import { describe, expect, test } from 'vitest';
import { MemoryMembership } from './memory-membership.js';
import { MemoryMesh } from './memory-router.js';

const inventory = (name: string) => async () => ({ name, keys: 0, images: [] });

describe('MemoryMembership', () => {
  test("tells of members already there and of those that come, and gives one member's inventory", async () => {
    const mesh = new MemoryMesh();
    const a = new MemoryMembership(mesh, mesh.join({ id: 'a' }));
    const b = new MemoryMembership(mesh, mesh.join({ id: 'b' }));
    await a.serveInventory(inventory('a'));
    const seenByB: string[] = [];
    b.onMember((id) => seenByB.push(id));
    expect(seenByB).toEqual(['a']);
    const c = new MemoryMembership(mesh, mesh.join({ id: 'c' }));
    await c.serveInventory(inventory('c'));
    await b.serveInventory(inventory('b'));
    expect(seenByB).toEqual(['a', 'c']);
    expect((await b.inventoryOf('c'))?.name).toBe('c');
    expect(await b.inventoryOf('nobody')).toBeUndefined();
  });
});
