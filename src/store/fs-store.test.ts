import { randomBytes, createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { storeConformance } from './conformance.js';
import { FsStore } from './fs-store.js';
import { DigestMismatchError } from './store.js';

const log = pino({ level: 'silent' });
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

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

  it('publishes a blob only after its digest is verified', async () => {
    const store = await FsStore.open(root, log);
    const data = randomBytes(3 << 20);
    const upload = await store.beginUpload();
    await upload.append(Readable.from([data.subarray(0, 1 << 20), data.subarray(1 << 20)]));
    expect(await store.stat(sha(data))).toBeUndefined();
    await expect(upload.commit({ digest: sha(Buffer.from('x')) })).rejects.toThrow(DigestMismatchError);
    expect(readdirSync(join(root, 'blobs', 'sha256'))).toEqual([]);
    await upload.abort();
    expect(readdirSync(join(root, 'uploads'))).toEqual([]);
  });

  it('keeps what arrived before a broken source, so the upload can resume', async () => {
    const store = await FsStore.open(root, log);
    const data = randomBytes(100_000);
    const upload = await store.beginUpload();
    async function* broken() {
      yield data.subarray(0, 40_000);
      throw new Error('connection reset');
    }
    await expect(upload.append(broken())).rejects.toThrow('connection reset');
    expect(upload.offset).toBe(40_000);
    await upload.append(Readable.from([data.subarray(40_000)]));
    const info = await upload.commit({ digest: sha(data), size: data.length });
    expect(info.size).toBe(100_000);
    const { stream } = await store.open(sha(data), { start: 39_990, end: 40_009 });
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c);
    expect(Buffer.concat(chunks).equals(data.subarray(39_990, 40_010))).toBe(true);
  });

  it('drops partial uploads left by a crash when it opens', async () => {
    writeFileSync(join(root, 'uploads', 'left-by-crash'), 'partial');
    await FsStore.open(root, log);
    expect(readdirSync(join(root, 'uploads'))).toEqual([]);
  });

  it('keeps image records across reopen', async () => {
    const store = await FsStore.open(root, log);
    const target = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(Buffer.from('m')), size: 1 };
    await store.images.put({ name: 'docker.io/library/app:1', target, labels: {} });
    const again = await FsStore.open(root, log);
    expect(await again.images.get('docker.io/library/app:1')).toEqual({ name: 'docker.io/library/app:1', target, labels: {} });
    expect(await again.images.delete('docker.io/library/app:1')).toBe(true);
    expect(await again.images.list()).toEqual([]);
  });
});
