// Integration tests against the real containerd started by test/global-setup.ts.
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ctr } from '../../../test/helpers/containerd.js';
import { MediaType } from '../../oci/manifest.js';
import { storeConformance } from '../conformance.js';
import { DigestMismatchError, NotFoundError, SizeMismatchError, type StoreEvent } from '../store.js';
import { type Descriptor } from '../../oci/digest.js';
import { Code, ContainerdClient, hasCode } from './client.js';
import { ContainerdStore } from './store.js';

const socket = inject('containerdSocket');
const namespace = `lm-test-${randomBytes(4).toString('hex')}`;
const logger = pino({ level: 'silent' });

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const ctrNs = (...args: string[]) => ctr(socket, ['-n', namespace, ...args]);

async function* pieces(data: Buffer, size: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

async function put(store: ContainerdStore, data: Buffer, labels?: Record<string, string>) {
  const upload = await store.beginUpload();
  await upload.append(pieces(data, 64 * 1024 + 7));
  return upload.commit({ digest: sha256(data), size: data.length }, labels);
}

/** Runs containerd's GC now: deleting a lease with --sync collects synchronously. */
async function collectGarbage(): Promise<void> {
  const id = `gc-${randomBytes(4).toString('hex')}`;
  await ctrNs('leases', 'create', '--id', id);
  await ctrNs('leases', 'delete', '--sync', id);
}

let store: ContainerdStore;
let grpcStore: ContainerdStore;

beforeAll(async () => {
  store = await ContainerdStore.connect({ socket, namespace, logger });
  // A content root that does not exist forces reads over gRPC content.Read.
  grpcStore = await ContainerdStore.connect({ socket, namespace, logger, contentRoot: '/nonexistent/layermesh' });
});

afterAll(async () => {
  await store?.close();
  await grpcStore?.close();
});

// A fresh namespace per test: with isolated content sharing it starts empty.
storeConformance('containerd', async () => {
  const store = await ContainerdStore.connect({ socket, namespace: `lm-conf-${randomBytes(6).toString('hex')}`, logger });
  return { store, close: () => store.close() };
});

describe('ContainerdStore blobs', () => {
  const data = randomBytes(3 * 1024 * 1024 + 12_345); // several 1 MiB messages, an odd tail

  it('finds the content root through introspection and reads blob files directly', () => {
    expect(store.blobDir).toBe(join(inject('containerdRoot'), 'io.containerd.content.v1.content', 'blobs', 'sha256'));
    expect(grpcStore.blobDir).toBeUndefined();
  });

  it('uploads, commits, stats and opens (direct file path)', async () => {
    const info = await put(store, data, { 'example.com/kind': 'test' });
    expect(info).toEqual({ digest: sha256(data), size: data.length, labels: { 'example.com/kind': 'test' } });
    expect(await store.stat(sha256(data))).toEqual(info);
    const full = await store.open(sha256(data));
    expect(full.size).toBe(data.length);
    expect((await readAll(full.stream)).equals(data)).toBe(true);
    const ranged = await store.open(sha256(data), { start: 1000, end: 2_500_000 });
    expect(ranged.size).toBe(data.length);
    expect((await readAll(ranged.stream)).equals(data.subarray(1000, 2_500_001))).toBe(true);
  });

  it('uploads and opens over gRPC content.Read', async () => {
    const other = randomBytes(1_500_000);
    await put(grpcStore, other);
    expect((await readAll((await grpcStore.open(sha256(other))).stream)).equals(other)).toBe(true);
    const ranged = await grpcStore.open(sha256(data), { start: data.length - 10, end: data.length - 1 });
    expect((await readAll(ranged.stream)).equals(data.subarray(data.length - 10))).toBe(true);
    const one = await grpcStore.open(sha256(data), { start: 5, end: 5 });
    expect((await readAll(one.stream)).equals(data.subarray(5, 6))).toBe(true);
  });

  it('reports absent blobs and bad ranges', async () => {
    const absent = sha256(Buffer.from('never uploaded'));
    expect(await store.stat(absent)).toBeUndefined();
    await expect(store.open(absent)).rejects.toBeInstanceOf(NotFoundError);
    await expect(grpcStore.open(absent)).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.open(sha256(data), { start: 0, end: data.length })).rejects.toBeInstanceOf(RangeError);
  });

  it('handles the empty blob', async () => {
    const empty = Buffer.alloc(0);
    const info = await put(store, empty);
    expect(info.size).toBe(0);
    expect((await readAll((await store.open(sha256(empty))).stream)).length).toBe(0);
  });

  it('lists blobs', async () => {
    const digests: string[] = [];
    for await (const b of store.blobs()) digests.push(b.digest);
    expect(digests).toContain(sha256(data));
  });

  it('commits nothing on a wrong digest or size, and abort releases the upload', async () => {
    const bytes = randomBytes(10_000);
    const wrong = sha256(Buffer.from('something else'));
    const upload = await store.beginUpload();
    await upload.append(pieces(bytes, 4096));
    await expect(upload.commit({ digest: wrong })).rejects.toBeInstanceOf(DigestMismatchError);
    await expect(upload.commit({ digest: sha256(bytes), size: 9_999 })).rejects.toBeInstanceOf(SizeMismatchError);
    const listed = await ctrNs('content', 'ls');
    expect(listed).not.toContain(wrong);
    expect(listed).not.toContain(sha256(bytes));
    expect(await ctrNs('leases', 'ls')).toContain(upload.id);
    await upload.abort();
    await upload.abort(); // safe twice
    expect(await ctrNs('leases', 'ls')).not.toContain(upload.id);
    expect(await ctrNs('content', 'active')).not.toContain(upload.id);
  });

  it('containerd 1.6 answers AlreadyExists without checking the bytes; the store checks them', async () => {
    const existing = sha256(data);
    const other = randomBytes(100);
    // Raw protocol: containerd accepts a COMMIT of different bytes under an existing digest.
    const client = await ContainerdClient.connect(socket, namespace);
    const call = client.bidi<object, { offset: number }>('content', 'Write');
    const ref = `raw-${randomBytes(4).toString('hex')}`;
    const responses: unknown[] = [];
    const outcome = new Promise<unknown>((resolve) => {
      call.on('data', (r) => responses.push(r));
      call.on('error', (err) => resolve(client.error('content.Write', err)));
      call.on('end', () => resolve(undefined));
    });
    call.write({ action: 'WRITE', ref, offset: 0, data: other });
    call.write({ action: 'COMMIT', ref, offset: other.length, total: other.length, expected: existing });
    expect(hasCode(await outcome, Code.ALREADY_EXISTS)).toBe(true);
    client.close();
    // The store verifies what containerd holds before committing.
    const upload = await store.beginUpload();
    await upload.append(pieces(other, 50));
    await expect(upload.commit({ digest: existing })).rejects.toBeInstanceOf(DigestMismatchError);
    await upload.abort();
    // Re-uploading the right bytes of an existing blob succeeds.
    expect((await put(store, data)).digest).toBe(existing);
  });

  it('keeps an untagged blob only while its blob lease exists', async () => {
    const bytes = randomBytes(1000);
    await put(store, bytes);
    await collectGarbage();
    expect(await store.stat(sha256(bytes))).toBeDefined();
    await ctrNs('leases', 'delete', `layermesh-blob-${sha256(bytes).slice('sha256:'.length)}`);
    await collectGarbage();
    expect(await store.stat(sha256(bytes))).toBeUndefined();
  });

  it('deletes blobs', async () => {
    const bytes = randomBytes(1000);
    await put(store, bytes);
    expect(await ctrNs('leases', 'ls')).toContain(`layermesh-blob-${sha256(bytes).slice('sha256:'.length)}`);
    expect(await store.delete(sha256(bytes))).toBe(true);
    expect(await store.stat(sha256(bytes))).toBeUndefined();
    // Its protecting lease goes with it.
    expect(await ctrNs('leases', 'ls')).not.toContain(`layermesh-blob-${sha256(bytes).slice('sha256:'.length)}`);
    expect(await store.delete(sha256(bytes))).toBe(false);
  });
});

describe('ContainerdStore images', () => {
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  const config = json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } });
  const layers = [randomBytes(20_000), randomBytes(30_000)];
  const desc = (mediaType: string, b: Buffer): Descriptor => ({ mediaType, digest: sha256(b), size: b.length });
  const manifest = json({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: desc('application/vnd.oci.image.config.v1+json', config),
    layers: layers.map((l) => desc('application/vnd.oci.image.layer.v1.tar+gzip', l)),
  });
  const missing: Descriptor = { mediaType: MediaType.ociManifest, digest: sha256(Buffer.from('arm64 manifest')), size: 14 };
  const index = json({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [desc(MediaType.ociManifest, manifest), missing] });
  const name = 'registry.example/team/app:1';

  it('put labels the tree for containerd GC, writes the record and releases blob leases', async () => {
    for (const b of [config, ...layers, manifest, index]) await put(store, b);
    const hexes = [config, ...layers, manifest, index].map((b) => sha256(b).slice('sha256:'.length));
    const leases = () => ctrNs('leases', 'ls');
    for (const hex of hexes) expect(await leases()).toContain(`layermesh-blob-${hex}`);

    await store.images.put({ name, target: desc(MediaType.ociIndex, index), labels: { team: 'a' } });

    expect((await store.stat(sha256(index)))!.labels).toMatchObject({
      'containerd.io/gc.ref.content.m.0': sha256(manifest),
      'containerd.io/gc.ref.content.m.1': missing.digest,
    });
    expect((await store.stat(sha256(manifest)))!.labels).toMatchObject({
      'containerd.io/gc.ref.content.config': sha256(config),
      'containerd.io/gc.ref.content.l.0': sha256(layers[0]),
      'containerd.io/gc.ref.content.l.1': sha256(layers[1]),
    });
    expect(await ctrNs('content', 'ls')).toContain(`containerd.io/gc.ref.content.l.1=${sha256(layers[1])}`);
    for (const hex of hexes) expect(await leases()).not.toContain(hex);
    expect(await leases()).not.toContain('layermesh-upload-');
    expect(await store.images.get(name)).toEqual({ name, target: desc(MediaType.ociIndex, index), labels: { team: 'a' } });
    expect((await store.images.list()).map((i) => i.name)).toContain(name);

    // With the leases gone, only the tag and the labels keep the blobs through a GC.
    await collectGarbage();
    for (const b of [config, ...layers, manifest, index]) expect(await store.stat(sha256(b))).toBeDefined();
  });

  it('put updates an existing image', async () => {
    await store.images.put({ name, target: desc(MediaType.ociManifest, manifest), labels: { team: 'b' } });
    expect(await store.images.get(name)).toEqual({ name, target: desc(MediaType.ociManifest, manifest), labels: { team: 'b' } });
  });

  it('put refuses a target that is not held', async () => {
    await expect(store.images.put({ name: 'registry.example/none:1', target: missing, labels: {} }))
      .rejects.toBeInstanceOf(NotFoundError);
  });

  it('deletes images', async () => {
    expect(await store.images.delete(name)).toBe(true);
    expect(await store.images.get(name)).toBeUndefined();
    expect(await store.images.delete(name)).toBe(false);
  });
});

describe('ContainerdStore events', () => {
  it('yields image and blob changes of this namespace until aborted', async () => {
    const controller = new AbortController();
    const seen: StoreEvent[] = [];
    const done = (async () => {
      for await (const e of store.events(controller.signal)) seen.push(e);
    })();
    // Another namespace's changes must not show up.
    const other = await ContainerdStore.connect({ socket, namespace: `${namespace}-other`, logger });
    await new Promise((r) => setTimeout(r, 200)); // let containerd register the subscription

    const bytes = randomBytes(500);
    await put(store, bytes);
    const target = { mediaType: 'application/octet-stream', digest: sha256(bytes), size: bytes.length };
    await store.images.put({ name: 'events.example/app:1', target, labels: {} });
    await store.images.put({ name: 'events.example/app:1', target, labels: { v: '2' } });
    await other.images.put({ name: 'events.example/other:1', target: { ...target, digest: (await put(other, bytes)).digest }, labels: {} });
    await store.images.delete('events.example/app:1');
    await store.delete(sha256(bytes));

    const expected: StoreEvent[] = [
      { type: 'blob-added', digest: sha256(bytes) },
      { type: 'image-added', name: 'events.example/app:1' },
      { type: 'image-updated', name: 'events.example/app:1' },
      { type: 'image-removed', name: 'events.example/app:1' },
      { type: 'blob-removed', digest: sha256(bytes) },
    ];
    await expect.poll(() => seen.length, { timeout: 5000 }).toBeGreaterThanOrEqual(expected.length);
    controller.abort();
    await done;
    expect(seen).toEqual(expected);
    await other.close();
  });

  it('ends subscriptions when the store closes', async () => {
    const own = await ContainerdStore.connect({ socket, namespace, logger });
    const done = (async () => {
      for await (const e of own.events(new AbortController().signal)) void e;
    })();
    await own.close();
    await expect(done).resolves.toBeUndefined();
  });
});

describe('ContainerdStore.connect', () => {
  it('names the socket when containerd does not answer', async () => {
    await expect(ContainerdStore.connect({ socket: '/nonexistent/containerd.sock', namespace, logger }))
      .rejects.toThrow('/nonexistent/containerd.sock');
  });
});
