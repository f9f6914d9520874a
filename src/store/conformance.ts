// The store conformance suite: what every Store promises, run against each implementation from its
// test file with a factory that opens a fresh, empty store per test. Blob labels are left out: they
// are containerd's (GC, distribution source); memory keeps them too, fs keeps none.
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { content, digests, put, sha256, withStore, type OpenStore } from './conformance-kit.js';
import { imageCases, eventCases } from './conformance-images.js';
import { uploadCases, concurrencyCases } from './conformance-uploads.js';
import { NotFoundError } from './store.js';

export type { OpenStore } from './conformance-kit.js';

export function storeConformance(name: string, open: OpenStore): void {
  describe(`${name} store conformance`, () => {
    describe('blobs', () => blobCases(open));
    describe('uploads', () => uploadCases(open));
    describe('concurrency', () => concurrencyCases(open));
    describe('images', () => imageCases(open));
    describe('events', () => eventCases(open));
  });
}

function blobCases(open: OpenStore): void {
  // Several 1 MiB write and read units, and an odd tail.
  const data = randomBytes(2.5 * (1 << 20) + 12_345);
  const digest = sha256(data);

  it('puts, stats and opens a blob whole', withStore(open, async (store) => {
    const info = await put(store, data);
    expect(info).toMatchObject({ digest, size: data.length });
    expect(await store.stat(digest)).toMatchObject({ digest, size: data.length });
    const reader = await store.open(digest);
    reader.stream.destroy();
    expect(reader.size).toBe(data.length);
    expect((await content(store, digest)).equals(data)).toBe(true);
  }));

  it('opens ranges: first byte, last byte, middle, whole', withStore(open, async (store) => {
    await put(store, data);
    const last = data.length - 1;
    for (const [start, end] of [[0, 0], [last, last], [1000, 2_000_000], [(1 << 20) - 1, (1 << 20)], [0, last]]) {
      const reader = await store.open(digest, { start, end });
      reader.stream.destroy();
      expect(reader.size).toBe(data.length); // the whole blob's size, not the range's
      expect((await content(store, digest, { start, end })).equals(data.subarray(start, end + 1))).toBe(true);
    }
  }));

  it('rejects a range that does not lie within the blob', withStore(open, async (store) => {
    await put(store, data);
    for (const [start, end] of [[0, data.length], [data.length, data.length], [10, 5], [-1, 3]]) {
      await expect(store.open(digest, { start, end }), `${start}-${end}`).rejects.toBeInstanceOf(RangeError);
    }
  }));

  it('reports an absent blob', withStore(open, async (store) => {
    expect(await store.stat(digest)).toBeUndefined();
    await expect(store.open(digest)).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.delete(digest)).toBe(false);
  }));

  it('reports strings that are no sha256 digest as absent', withStore(open, async (store) => {
    for (const odd of ['nonsense', 'sha256:xyz', `sha256:${'A'.repeat(64)}`, `sha512:${'a'.repeat(128)}`, '']) {
      expect(await store.stat(odd), odd).toBeUndefined();
      await expect(store.open(odd), odd).rejects.toBeInstanceOf(NotFoundError);
      expect(await store.delete(odd), odd).toBe(false);
    }
  }));

  it('deletes a blob; deleting it again is false', withStore(open, async (store) => {
    const other = randomBytes(1000);
    await put(store, data);
    await put(store, other);
    expect(await store.delete(digest)).toBe(true);
    expect(await store.stat(digest)).toBeUndefined();
    await expect(store.open(digest)).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.delete(digest)).toBe(false);
    expect(await digests(store)).toEqual([sha256(other)]);
    expect((await content(store, sha256(other))).equals(other)).toBe(true);
  }));

  it('stores the empty blob', withStore(open, async (store) => {
    const empty = Buffer.alloc(0);
    const upload = await store.beginUpload();
    await upload.append(pieces0());
    expect(await upload.commit({ digest: sha256(empty), size: 0 })).toMatchObject({ digest: sha256(empty), size: 0 });
    expect(await store.stat(sha256(empty))).toMatchObject({ size: 0 });
    const reader = await store.open(sha256(empty));
    reader.stream.destroy();
    expect(reader.size).toBe(0);
    expect((await content(store, sha256(empty))).length).toBe(0);
  }));

  it('lists what it stores in blobs()', withStore(open, async (store) => {
    expect(await digests(store)).toEqual([]);
    const blobs = [randomBytes(10), randomBytes(70_000), Buffer.alloc(0)];
    for (const b of blobs) await put(store, b);
    expect(await digests(store)).toEqual(blobs.map(sha256).sort());
    for await (const info of store.blobs()) expect(info.size).toBe(blobs.find((b) => sha256(b) === info.digest)!.length);
    for await (const info of store.blobs()) {
      expect(info.digest).toMatch(/^sha256:/);
      break; // a consumer may stop early
    }
    expect(await digests(store)).toHaveLength(blobs.length);
  }));

  it('stays usable after readers stop early and destroy their streams', withStore(open, async (store) => {
    await put(store, data);
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    for (let i = 0; i < 40; i++) {
      const { stream } = await store.open(digest, i % 2 ? { start: 100, end: data.length - 1 } : undefined);
      if (i % 4 < 2) {
        for await (const chunk of stream) {
          expect((chunk as Buffer).length).toBeGreaterThan(0);
          break; // leaving the loop destroys the stream
        }
      } else stream.destroy();
    }
    // Every abandoned reader let go of what it held (file descriptors are closed asynchronously).
    await expect.poll(fds, { timeout: 5000 }).toBeLessThan(before + 5);
    expect((await content(store, digest)).equals(data)).toBe(true);
    expect(await store.delete(digest)).toBe(true);
    await put(store, data);
    expect((await content(store, digest, { start: 5, end: 9 })).equals(data.subarray(5, 10))).toBe(true);
  }));
}

/** A body made of empty chunks: it appends nothing. */
async function* pieces0(): AsyncIterable<Uint8Array> {
  yield new Uint8Array(0);
  yield Buffer.alloc(0);
}
