// The store conformance suite on the fs store, and what only this store does: files, crash leftovers,
// records that survive a restart, older record names, freeing the blobs of deleted images.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { storeConformance } from './conformance.js';
import { digests, pieces, put, putImage, record, sha256 } from './conformance-kit.js';
import { FsStore } from './fs-store.js';

const log = pino({ level: 'silent' });

storeConformance('fs', async () => {
  const root = mkdtempSync(join(tmpdir(), 'fs-store-'));
  const store = await FsStore.open(root, log);
  return {
    store,
    close: async () => {
      await store.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
});

describe('FsStore', () => {
  const root = mkdtempSync(join(tmpdir(), 'fs-store-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('keeps an upload in one file until commit, and removes it on abort', async () => {
    const store = await FsStore.open(root, log);
    const data = randomBytes(3 << 20);
    const upload = await store.beginUpload();
    await upload.append(pieces(data, 1 << 20));
    expect(readdirSync(join(root, 'uploads'))).toEqual([upload.id]);
    expect(readdirSync(join(root, 'blobs', 'sha256'))).toEqual([]);
    await upload.abort();
    expect(readdirSync(join(root, 'uploads'))).toEqual([]);
    await put(store, data);
    expect(store.localPath(sha256(data))).toBe(join(root, 'blobs', 'sha256', sha256(data).slice('sha256:'.length)));
    expect(readdirSync(join(root, 'uploads'))).toEqual([]);
  });

  it('ends an abort that cannot remove the upload\'s file without throwing (Upload.abort never does)', async () => {
    const store = await FsStore.open(root, log);
    const upload = await store.beginUpload();
    const path = join(root, 'uploads', upload.id);
    rmSync(path);
    mkdirSync(join(path, 'in-the-way'), { recursive: true }); // rm without recursive fails on it
    try {
      await expect(upload.abort()).resolves.toBeUndefined();
    } finally {
      rmSync(path, { recursive: true });
    }
  });

  it('drops partial uploads left by a crash when it opens', async () => {
    writeFileSync(join(root, 'uploads', 'left-by-crash'), 'partial');
    await FsStore.open(root, log);
    expect(readdirSync(join(root, 'uploads'))).toEqual([]);
  });

  it('removes the temporary files of record writes a crash cut off when it opens, and nothing else', async () => {
    const left = ['0123abcd.json.0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9.tmp'];
    writeFileSync(join(root, 'images', left[0]), '{"half');
    writeFileSync(join(root, 'orphans.json.0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0fa.tmp'), '{');
    writeFileSync(join(root, 'images', 'notes.tmp'), 'not ours');
    await FsStore.open(root, log);
    expect(readdirSync(join(root, 'images')).filter((f) => f.endsWith('.tmp'))).toEqual(['notes.tmp']);
    expect(readdirSync(root).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    rmSync(join(root, 'images', 'notes.tmp'));
  });

  it('keeps image records across reopen', async () => {
    const store = await FsStore.open(root, log);
    const target = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(Buffer.from('m')), size: 1 };
    await store.images.put({ name: 'docker.io/library/app:1', target, labels: {} });
    const again = await FsStore.open(root, log);
    expect(await again.images.get('docker.io/library/app:1')).toEqual({ name: 'docker.io/library/app:1', target, labels: {} });
    expect(await again.images.delete('docker.io/library/app:1')).toBe(true);
    expect(await again.images.list()).toEqual([]);
  });

  it('moves records written under their encoded name by earlier versions to their hashed name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-store-'));
    try {
      const target = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(Buffer.from('m')), size: 1 };
      const name = 'localhost:5000/team/app:1';
      mkdirSync(join(dir, 'images'), { recursive: true });
      writeFileSync(join(dir, 'images', `${encodeURIComponent(name)}.json`), JSON.stringify(record(name, target)));
      const store = await FsStore.open(dir, log);
      expect(await store.images.get(name)).toEqual(record(name, target));
      expect(readdirSync(join(dir, 'images'))).toEqual([`${createHash('sha256').update(name).digest('hex')}.json`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('frees the blobs only a deleted image referenced, after the delay', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-store-'));
    const store = await FsStore.open(dir, log, 1000);
    try {
      const gone = await putImage(store);
      const kept = await putImage(store);
      const loose = randomBytes(100);
      await put(store, loose);
      await store.images.put(record('example/gone:1', gone));
      await store.images.put(record('example/kept:1', kept));
      await store.images.put(record('example/kept:2', gone)); // still names `gone` after the first goes
      await store.images.delete('example/gone:1');
      await store.images.delete('example/kept:2');
      expect(await store.stat(gone.digest)).toBeDefined(); // not at once: a push in flight may reference it
      // Then the sweep removes gone's manifest, config and layer, one after the other.
      await expect.poll(async () => (await digests(store)).length, { timeout: 10_000 }).toBe(4);
      expect(await store.stat(gone.digest)).toBeUndefined();
      expect(await store.stat(kept.digest)).toBeDefined();
      expect(await store.stat(sha256(loose))).toBeDefined();
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('frees the blobs of a deleted image with no delay at all (--gc-delay 0): the sweep runs after the record is gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-store-'));
    const store = await FsStore.open(dir, log, 0);
    try {
      for (let i = 0; i < 5; i++) {
        const gone = await putImage(store);
        await store.images.put(record(`example/gone:${i}`, gone));
        await store.images.delete(`example/gone:${i}`);
        await expect.poll(async () => (await digests(store)).length, { timeout: 5_000 }).toBe(0);
      }
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('frees the blobs of an image deleted just before a restart, once the store is open again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-store-'));
    const first = await FsStore.open(dir, log, 500);
    let again: FsStore | undefined;
    try {
      const gone = await putImage(first);
      await first.images.put(record('example/gone:1', gone));
      await first.images.delete('example/gone:1');
      await first.close(); // before the sweep was due
      expect(await digests(first)).toContain(gone.digest);
      again = await FsStore.open(dir, log, 500);
      await expect.poll(async () => (await digests(again!)).length, { timeout: 5_000 }).toBe(0);
    } finally {
      await again?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes up a list of blobs to free after a quiet delay, skipping what names none, and opens whatever the file holds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-store-'));
    let store: FsStore | undefined;
    try {
      const first = await FsStore.open(dir, log, 1000);
      const loose = await put(first, randomBytes(100));
      await first.close();
      for (const bad of ['null', '[1]', '{"sha256:x": null, "not a digest": {"due": 0, "latest": 0}}', '{not json']) {
        writeFileSync(join(dir, 'orphans.json'), bad);
        await (await FsStore.open(dir, log, 1000)).close();
      }
      // Due long ago, as a restart finds it: clients the restart cut off may be pushing again, so not at once.
      writeFileSync(join(dir, 'orphans.json'), JSON.stringify({ [loose.digest]: { due: 0, latest: 0 }, 'sha256:nonsense': { due: 0 } }));
      store = await FsStore.open(dir, log, 1000);
      await new Promise((r) => setTimeout(r, 300));
      expect(await store.stat(loose.digest), 'freed before a quiet delay').toBeDefined();
      await expect.poll(async () => store!.stat(loose.digest), { timeout: 5_000 }).toBeUndefined();
    } finally {
      await store?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps a deleted image\'s blobs while a push is still sending its layers: its manifest may name them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-store-'));
    const store = await FsStore.open(dir, log, 500);
    try {
      const old = await putImage(store);
      await store.images.put(record('example/app:1', old));
      await store.images.delete('example/app:1');
      // A push that found the old layers present sends a new one, slowly, for 1.5 s: past the delay.
      const data = randomBytes(15 * 1024);
      const upload = await store.beginUpload();
      for (let at = 0; at < data.length; at += 1024) {
        await upload.append(pieces(data.subarray(at, at + 1024), 1024));
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await digests(store), 'while the push wrote').toContain(old.digest);
      await upload.commit({ digest: sha256(data) });
      // Quiet once more: the sweep follows.
      await expect.poll(async () => (await digests(store)).includes(old.digest), { timeout: 5_000 }).toBe(false);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
