import { describe, expect, test } from 'vitest';
import { MemoryMesh } from './memory-router.js';
import type { GossipEvent, MeshEvent, PeerRef } from './router.js';

async function all(it: AsyncIterable<PeerRef>): Promise<string[]> {
  const ids: string[] = [];
  for await (const p of it) ids.push(p.id);
  return ids;
}

const DIGEST = `sha256:${'cd'.repeat(32)}`;

describe('MemoryRouter', () => {
  test('members find each other\'s keys, self first; removed keys are gone', async () => {
    const mesh = new MemoryMesh();
    const a = mesh.join({ id: 'a' });
    const b = mesh.join({ id: 'b', addrs: ['/ip4/10.0.0.2/tcp/4001'] });
    a.announce({ add: [DIGEST, 'docker.io/library/app:1'] });
    b.announce({ add: [DIGEST] });
    expect(await all(a.findProviders(DIGEST))).toEqual(['a', 'b']);
    expect(await all(b.findProviders(DIGEST))).toEqual(['b', 'a']);
    expect(await all(b.findProviders('docker.io/library/app:1'))).toEqual(['a']);
    for await (const p of a.findProviders(DIGEST)) if (p.id === 'b') expect(p.addrs).toEqual(['/ip4/10.0.0.2/tcp/4001']);
    a.announce({ remove: [DIGEST] });
    expect(await all(b.findProviders(DIGEST))).toEqual(['b']);
    expect(await all(b.findProviders('nothing'))).toEqual([]);
  });

  test('an aborted lookup ends', async () => {
    const mesh = new MemoryMesh();
    const a = mesh.join();
    a.announce({ add: [DIGEST] });
    expect(await all(a.findProviders(DIGEST, AbortSignal.abort()))).toEqual([]);
  });

  test('peers lists the other members with their info', () => {
    const mesh = new MemoryMesh();
    const a = mesh.join({ id: 'a' });
    mesh.join({ id: 'b', info: { name: 'host-b', labels: { zone: '1' }, dataPlanePort: 5001 } });
    expect(a.peers()).toEqual([{ id: 'b', addrs: ['/memory/b'], rttMs: 0, info: { name: 'host-b', labels: { zone: '1' }, dataPlanePort: 5001 } }]);
    expect(() => mesh.join({ id: 'a' })).toThrow(/already a member/);
  });

  test('events reach the other members, not the publisher, and only events naming their publisher', async () => {
    const mesh = new MemoryMesh();
    const [a, b, c] = ['a', 'b', 'c'].map((id) => mesh.join({ id }));
    const got: Record<string, Array<[GossipEvent, string]>> = { a: [], b: [], c: [] };
    for (const r of [a, b, c]) r.onEvent((e, from) => got[r.id].push([e, from]));
    const event: MeshEvent = { type: 'image-pushed', image: 'docker.io/library/app:1', digest: DIGEST, node: 'a', clock: 1 };
    await a.publish(event);
    await expect(b.publish(event)).rejects.toThrow(/cannot publish an event for node a/);
    await expect(a.publish({ ...event, digest: 'nope' })).rejects.toThrow(/invalid mesh event: bad digest/);
    await new Promise((r) => setTimeout(r, 0));
    expect(got).toEqual({ a: [], b: [[event, 'a']], c: [[event, 'a']] });
  });

  test('a member that stops is gone for the others', async () => {
    const mesh = new MemoryMesh();
    const a = mesh.join({ id: 'a' });
    const b = mesh.join({ id: 'b' });
    b.announce({ add: [DIGEST] });
    await b.stop();
    expect(await all(a.findProviders(DIGEST))).toEqual([]);
    expect(a.peers()).toEqual([]);
  });
});
