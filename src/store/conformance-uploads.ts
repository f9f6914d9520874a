// Conformance cases for uploads: appends, resumption, verification on commit, ending, concurrent writers.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { expect, it } from 'vitest';
import { content, digests, pieces, put, sha256, subscribe, withStore, type OpenStore } from './conformance-kit.js';
import { DigestMismatchError, SizeMismatchError, UploadClosedError } from './store.js';

export function uploadCases(open: OpenStore): void {
  const data = randomBytes(2 * (1 << 20) + 777);

  it('appends in several calls and counts the offset after each', withStore(open, async (store) => {
    const upload = await store.beginUpload();
    expect(upload.offset).toBe(0);
    const cuts = [0, 10, 1 << 20, (1 << 20) + 1, data.length];
    for (let i = 1; i < cuts.length; i++) {
      const part = data.subarray(cuts[i - 1], cuts[i]);
      expect(await upload.append(pieces(part, 100_000))).toBe(cuts[i]);
      expect(upload.offset).toBe(cuts[i]);
    }
    expect(await store.stat(sha256(data))).toBeUndefined(); // nothing is visible before commit
    expect(await upload.commit({ digest: sha256(data), size: data.length })).toMatchObject({ digest: sha256(data), size: data.length });
    expect((await content(store, sha256(data))).equals(data)).toBe(true);
  }));

  it('keeps and counts the bytes that arrived before a source failed, and resumes after them', withStore(open, async (store) => {
    const upload = await store.beginUpload();
    const before = (1 << 20) + 300_000; // more than one write unit, and a part of the next
    async function* broken() {
      yield data.subarray(0, 300_000);
      yield data.subarray(300_000, before);
      throw new Error('connection reset');
    }
    await expect(upload.append(broken())).rejects.toThrow('connection reset');
    expect(upload.offset).toBe(before);
    expect(await upload.append(Readable.from([data.subarray(before)]))).toBe(data.length);
    await upload.commit({ digest: sha256(data), size: data.length });
    expect((await content(store, sha256(data))).equals(data)).toBe(true);
  }));

  it('takes each chunk when it comes, so a source may refill its buffer afterwards (as a spool lends them)', withStore(open, async (store) => {
    const upload = await store.beginUpload();
    async function* lent() {
      // Two buffers in turn, each overwritten once the chunk after it has been asked for.
      const buffers = [Buffer.alloc(100_000), Buffer.alloc(100_000)];
      for (let at = 0, i = 0; at < data.length; at += 100_000, i++) {
        const n = data.copy(buffers[i & 1], 0, at, at + 100_000);
        yield buffers[i & 1].subarray(0, n);
      }
    }
    await upload.append(lent());
    await upload.commit({ digest: sha256(data), size: data.length });
    expect((await content(store, sha256(data))).equals(data)).toBe(true);
  }));

  it('publishes nothing when the digest or the size is wrong', withStore(open, async (store) => {
    const upload = await store.beginUpload();
    await upload.append(pieces(data, 65_536));
    const wrong = sha256(Buffer.from('something else'));
    await expect(upload.commit({ digest: wrong })).rejects.toBeInstanceOf(DigestMismatchError);
    await expect(upload.commit({ digest: wrong, size: data.length })).rejects.toBeInstanceOf(DigestMismatchError);
    await expect(upload.commit({ digest: sha256(data), size: data.length - 1 })).rejects.toBeInstanceOf(SizeMismatchError);
    await expect(upload.commit({ digest: sha256(data), size: data.length + 1 })).rejects.toBeInstanceOf(SizeMismatchError);
    expect(await store.stat(wrong)).toBeUndefined();
    expect(await store.stat(sha256(data))).toBeUndefined();
    expect(await digests(store)).toEqual([]);
    await upload.abort();
  }));

  it('refuses different bytes under the digest of a blob it holds, and keeps that blob', withStore(open, async (store) => {
    const held = randomBytes(4000);
    await put(store, held);
    const upload = await store.beginUpload();
    await upload.append(pieces(randomBytes(4000), 1000));
    await expect(upload.commit({ digest: sha256(held) })).rejects.toBeInstanceOf(DigestMismatchError);
    await upload.abort();
    expect((await content(store, sha256(held))).equals(held)).toBe(true);
  }));

  it('commits a blob it already holds', withStore(open, async (store) => {
    const first = await put(store, data);
    const again = await put(store, data);
    expect(again).toMatchObject({ digest: first.digest, size: first.size });
    expect(await digests(store)).toEqual([sha256(data)]);
    expect((await content(store, sha256(data))).equals(data)).toBe(true);
  }));

  it('publishes nothing on abort; abort twice is safe', withStore(open, async (store) => {
    const upload = await store.beginUpload();
    await upload.append(pieces(data, 65_536));
    await upload.abort();
    await upload.abort();
    expect(await store.stat(sha256(data))).toBeUndefined();
    expect(await digests(store)).toEqual([]);
    const unused = await store.beginUpload();
    expect(unused.id).not.toBe(upload.id);
    await unused.abort(); // nothing ever appended
  }));

  it('refuses appends and commits once the upload has ended', withStore(open, async (store) => {
    const bytes = randomBytes(1000);
    const aborted = await store.beginUpload();
    await aborted.append(pieces(bytes, 100));
    await aborted.abort();
    await expect(aborted.append(pieces(bytes, 100))).rejects.toBeInstanceOf(UploadClosedError);
    await expect(aborted.commit({ digest: sha256(bytes), size: bytes.length })).rejects.toBeInstanceOf(UploadClosedError);
    expect(await store.stat(sha256(bytes))).toBeUndefined();

    const committed = await store.beginUpload();
    await committed.append(pieces(bytes, 100));
    await committed.commit({ digest: sha256(bytes) });
    await expect(committed.append(pieces(bytes, 100))).rejects.toBeInstanceOf(UploadClosedError);
    await expect(committed.commit({ digest: sha256(bytes) })).rejects.toBeInstanceOf(UploadClosedError);
    await committed.abort(); // after commit: nothing to release, and the blob stays
    expect((await content(store, sha256(bytes))).equals(bytes)).toBe(true);
  }));

  it('fails an append that runs while the upload is aborted with UploadClosedError', withStore(open, async (store) => {
    const upload = await store.beginUpload();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const waiting = new Promise<void>((resolve) => (started = resolve));
    async function* slow() {
      yield data.subarray(0, 1000);
      started();
      await gate;
      yield data.subarray(1000, 2000);
    }
    const appending = upload.append(slow());
    await waiting;
    await upload.abort();
    release();
    await expect(appending).rejects.toBeInstanceOf(UploadClosedError);
    expect(await digests(store)).toEqual([]);
  }));
}

export function concurrencyCases(open: OpenStore): void {
  it('commits several uploads of different blobs at once', withStore(open, async (store) => {
    const blobs = Array.from({ length: 6 }, (_, i) => randomBytes(300_000 + i * 150_001));
    await Promise.all(blobs.map((b) => put(store, b)));
    expect(await digests(store)).toEqual(blobs.map(sha256).sort());
    for (const b of blobs) expect((await content(store, sha256(b))).equals(b)).toBe(true);
  }));

  it('commits several uploads of the same blob at once, and raises one blob-added', withStore(open, async (store) => {
    const events = await subscribe(store);
    const bytes = randomBytes(1_500_000);
    const infos = await Promise.all([put(store, bytes), put(store, bytes), put(store, bytes)]);
    for (const info of infos) expect(info).toMatchObject({ digest: sha256(bytes), size: bytes.length });
    expect(await digests(store)).toContain(sha256(bytes));
    expect((await content(store, sha256(bytes))).equals(bytes)).toBe(true);
    expect(await events.settle(1)).toEqual([{ type: 'blob-added', digest: sha256(bytes) }]);
  }));

  it('serves reads while other blobs are written and deleted', withStore(open, async (store) => {
    const kept = randomBytes(1_200_000);
    await put(store, kept);
    const churn = Array.from({ length: 4 }, () => randomBytes(200_000));
    const reads = Array.from({ length: 8 }, async () => expect((await content(store, sha256(kept))).equals(kept)).toBe(true));
    const writes = churn.map(async (b) => {
      await put(store, b);
      expect(await store.delete(sha256(b))).toBe(true);
    });
    await Promise.all([...reads, ...writes]);
    expect(await digests(store)).toEqual([sha256(kept)]);
  }));
}
