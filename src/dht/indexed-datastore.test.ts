import { describe, expect, test } from 'vitest';
import { Key } from 'interface-datastore';
import { PathIndexedDatastore } from './indexed-datastore.js';

async function keys(ds: PathIndexedDatastore, prefix?: string): Promise<string[]> {
  const out: string[] = [];
  for await (const { key } of ds.query(prefix === undefined ? {} : { prefix })) out.push(key.toString());
  return out.sort();
}

const bytes = (s: string) => new TextEncoder().encode(s);

describe('PathIndexedDatastore', () => {
  test('get, has, delete; a missing key is a NotFoundError', async () => {
    const ds = new PathIndexedDatastore();
    await ds.put(new Key('/a/b'), bytes('1'));
    expect(await ds.has(new Key('/a/b'))).toBe(true);
    expect(new TextDecoder().decode(await ds.get(new Key('/a/b')))).toBe('1');
    await ds.delete(new Key('/a/b'));
    expect(await ds.has(new Key('/a/b'))).toBe(false);
    expect(() => ds.get(new Key('/a/b'))).toThrow(expect.objectContaining({ name: 'NotFoundError' }));
  });

  test('prefix queries return the subtree, segment-aligned, like kad-dht and the peer store ask', async () => {
    const ds = new PathIndexedDatastore();
    for (const k of ['/dht/provider/cid1/p1', '/dht/provider/cid1/p2', '/dht/provider/cid2/p1', '/peers/x', '/dht']) {
      await ds.put(new Key(k), bytes(k));
    }
    expect(await keys(ds, '/dht/provider/cid1')).toEqual(['/dht/provider/cid1/p1', '/dht/provider/cid1/p2']);
    expect(await keys(ds, '/dht/provider')).toEqual(['/dht/provider/cid1/p1', '/dht/provider/cid1/p2', '/dht/provider/cid2/p1']);
    expect(await keys(ds, '/peers/')).toEqual(['/peers/x']);
    expect(await keys(ds, '/dht')).toHaveLength(4); // the key itself and its subtree
    expect(await keys(ds, '/dht/provider/cid3')).toEqual([]);
    expect(await keys(ds)).toHaveLength(5);
    expect(await keys(ds, '/dht/prov')).toEqual([]); // not segment-aligned: see the module comment
  });

  test('deleting while iterating a query is safe, and emptied branches disappear', async () => {
    const ds = new PathIndexedDatastore();
    for (let i = 0; i < 10; i++) await ds.put(new Key(`/dht/provider/c${i}/p`), bytes('x'));
    for await (const { key } of ds.query({ prefix: '/dht/provider' })) await ds.delete(key);
    expect(await keys(ds)).toEqual([]);
    await ds.put(new Key('/dht/provider/c1/p'), bytes('y'));
    expect(await keys(ds, '/dht/provider')).toEqual(['/dht/provider/c1/p']);
  });
});
