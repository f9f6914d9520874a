// Integration tests against the real containerd started by test/global-setup.ts: the store conformance
// suite, and what only this store does (its gRPC read path, leases, GC labels, namespaces).
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ctr } from '../../../test/helpers/containerd.js';
import { MAX_MANIFEST_BYTES } from '../../oci/limits.js';
import { MediaType } from '../../oci/manifest.js';
import { storeConformance } from '../conformance.js';
import { content, pieces, put, putImage, readAll, record, sha256, subscribe } from '../conformance-kit.js';
import { DigestMismatchError, NotFoundError, type StoreEvent } from '../store.js';
import { type Descriptor } from '../../oci/digest.js';
import { Code, ContainerdClient, hasCode } from './client.js';
import { ContainerdStore } from './store.js';

const socket = inject('containerdSocket');
const namespace = `lm-test-${randomBytes(4).toString('hex')}`;
const logger = pino({ level: 'silent' });

const ctrNs = (...args: string[]) => ctr(socket, ['-n', namespace, ...args]);
const blobLease = (digest: string) => `layermesh-blob-${digest.slice('sha256:'.length)}`;

/** Runs containerd's GC now: deleting a lease with --sync collects synchronously. */
async function collectGarbage(): Promise<void> {
  const id = `gc-${randomBytes(4).toString('hex')}`;
  await ctrNs('leases', 'create', '--id', id);
  await ctrNs('leases', 'delete', '--sync', id);
}

// A fresh namespace per test: with isolated content sharing it starts empty.
storeConformance('containerd', async () => {
  const store = await ContainerdStore.connect({ socket, namespace: `lm-conf-${randomBytes(6).toString('hex')}`, logger });
  return { store, close: () => store.close() };
});

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

describe('ContainerdStore blobs', () => {
  const data = randomBytes(3 * 1024 * 1024 + 12_345); // several 1 MiB messages, an odd tail

  it('finds the content root through introspection and reads blob files directly', () => {
    expect(store.blobDir).toBe(join(inject('containerdRoot'), 'io.containerd.content.v1.content', 'blobs', 'sha256'));
    expect(store.localPath(sha256(data))).toBe(join(store.blobDir!, sha256(data).slice('sha256:'.length)));
    expect(grpcStore.blobDir).toBeUndefined();
  });

  it('keeps the labels given at commit', async () => {
    const info = await put(store, data, { 'example.com/kind': 'test' });
    expect(info).toEqual({ digest: sha256(data), size: data.length, labels: { 'example.com/kind': 'test' } });
    expect(await store.stat(sha256(data))).toEqual(info);
  });

  it('reads over gRPC content.Read: whole, ranges, absent, and after readers stop early', async () => {
    const other = randomBytes(1_500_000);
    await put(grpcStore, other);
    expect((await readAll((await grpcStore.open(sha256(other))).stream)).equals(other)).toBe(true);
    for (const [start, end] of [[0, 0], [5, 5], [1000, 2_500_000], [data.length - 10, data.length - 1]]) {
      const ranged = await grpcStore.open(sha256(data), { start, end });
      expect((await readAll(ranged.stream)).equals(data.subarray(start, end + 1))).toBe(true);
    }
    await expect(grpcStore.open(sha256(Buffer.from('never uploaded')))).rejects.toBeInstanceOf(NotFoundError);
    for (let i = 0; i < 20; i++) {
      const { stream } = await grpcStore.open(sha256(data));
      for await (const chunk of stream) {
        expect((chunk as Buffer).length).toBeGreaterThan(0);
        break;
      }
    }
    expect((await readAll((await grpcStore.open(sha256(data))).stream)).equals(data)).toBe(true);
  });

  it('leaves no content, ingest or lease behind a failed commit and its abort', async () => {
    const bytes = randomBytes(10_000);
    const upload = await store.beginUpload();
    await upload.append(pieces(bytes, 4096));
    await expect(upload.commit({ digest: sha256(Buffer.from('something else')) })).rejects.toBeInstanceOf(DigestMismatchError);
    expect(await ctrNs('content', 'ls')).not.toContain(sha256(bytes));
    expect(await ctrNs('leases', 'ls')).toContain(upload.id);
    await upload.abort();
    expect(await ctrNs('leases', 'ls')).not.toContain(upload.id);
    expect(await ctrNs('content', 'active')).not.toContain(upload.id);
  });

  it('containerd 1.6 answers AlreadyExists without checking the bytes (the store checks them: conformance)', async () => {
    const existing = (await put(store, data)).digest;
    const other = randomBytes(100);
    const client = await ContainerdClient.connect(socket, namespace);
    const call = client.bidi<object, { offset: number }>('content', 'Write');
    const ref = `raw-${randomBytes(4).toString('hex')}`;
    const outcome = new Promise<unknown>((resolve) => {
      call.on('data', () => {});
      call.on('error', (err) => resolve(client.error('content.Write', err)));
      call.on('end', () => resolve(undefined));
    });
    call.write({ action: 'WRITE', ref, offset: 0, data: other });
    call.write({ action: 'COMMIT', ref, offset: other.length, total: other.length, expected: existing });
    expect(hasCode(await outcome, Code.ALREADY_EXISTS)).toBe(true);
    client.close();
  });

  it('keeps an untagged blob only while its blob lease exists', async () => {
    const bytes = randomBytes(1000);
    await put(store, bytes);
    await collectGarbage();
    expect(await store.stat(sha256(bytes))).toBeDefined();
    const held = (await ctrNs('leases', 'ls', '-q')).split('\n').filter((id) => id.startsWith(blobLease(sha256(bytes))));
    expect(held).toHaveLength(1);
    await ctrNs('leases', 'delete', ...held);
    await collectGarbage();
    expect(await store.stat(sha256(bytes))).toBeUndefined();
  });

  it('holds a blob uploaded under its named digest with the upload\'s own lease: no second lease, none deleted', async () => {
    const bytes = randomBytes(1000);
    const upload = await store.beginUpload(sha256(bytes));
    await upload.append(pieces(bytes, 400));
    await upload.commit({ digest: sha256(bytes), size: bytes.length });
    const leases = await ctrNs('leases', 'ls');
    expect(upload.id.startsWith(`${blobLease(sha256(bytes))}-`)).toBe(true);
    expect(leases).toContain(upload.id);
    expect(leases.split('\n').filter((line) => line.includes(blobLease(sha256(bytes))))).toHaveLength(1);
    await collectGarbage();
    expect(await store.stat(sha256(bytes))).toBeDefined();
    expect(await store.delete(sha256(bytes))).toBe(true);
    expect(await ctrNs('leases', 'ls')).not.toContain(upload.id);
  });

  it('leaves no lease behind an upload under a named digest whose bytes were not that blob', async () => {
    const bytes = randomBytes(1000);
    const claimed = sha256(Buffer.from('what the upload was begun for'));
    const upload = await store.beginUpload(claimed);
    await upload.append(pieces(bytes, 400));
    await expect(upload.commit({ digest: claimed })).rejects.toBeInstanceOf(DigestMismatchError);
    await upload.abort();
    expect(await ctrNs('leases', 'ls')).not.toContain(claimed.slice('sha256:'.length));
    expect(await ctrNs('content', 'active')).not.toContain(upload.id);
  });

  it('deletes the protecting lease with the blob', async () => {
    const bytes = randomBytes(1000);
    await put(store, bytes);
    expect(await ctrNs('leases', 'ls')).toContain(blobLease(sha256(bytes)));
    expect(await store.delete(sha256(bytes))).toBe(true);
    expect(await ctrNs('leases', 'ls')).not.toContain(blobLease(sha256(bytes)));
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
    for (const b of [config, layers[0], manifest, index]) await put(store, b);
    const named = await store.beginUpload(sha256(layers[1]));
    await named.append(pieces(layers[1], 1000));
    await named.commit({ digest: sha256(layers[1]) });
    const hexes = [config, ...layers, manifest, index].map((b) => sha256(b).slice('sha256:'.length));
    const leases = () => ctrNs('leases', 'ls');
    for (const hex of hexes) expect(await leases()).toContain(`layermesh-blob-${hex}`);

    await store.images.put({ name, target: desc(MediaType.ociIndex, index), labels: { team: 'a' } });
    await store.settled();

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

  it('releases the blob leases after put returns, and its store closes only once they are released', async () => {
    const own = await ContainerdStore.connect({ socket, namespace, logger });
    const target = await putImage(own);
    expect(await ctrNs('leases', 'ls')).toContain(blobLease(target.digest));
    await own.images.put({ name: 'registry.example/team/closing:1', target, labels: {} });
    await own.close();
    expect(await ctrNs('leases', 'ls')).not.toContain(blobLease(target.digest));
  });

  it('put leaves the lease of an upload under way of a blob it reaches: the same image pushed twice at once', async () => {
    const target = await putImage(store);
    const bytes = await content(store, target.digest);
    const again = await store.beginUpload(target.digest); // the second push, sending the manifest as the first tags it
    await store.images.put(record('registry.example/team/twice:1', target));
    await store.settled();
    await again.append(pieces(bytes, 100));
    expect((await again.commit({ digest: target.digest, size: bytes.length })).digest).toBe(target.digest);
  });

  it('put refuses a manifest too large to be one, and names it', async () => {
    const big = randomBytes(MAX_MANIFEST_BYTES + 1);
    await put(store, big);
    await expect(store.images.put({ name: 'registry.example/team/big:1', target: desc(MediaType.ociManifest, big), labels: {} }))
      .rejects.toThrow(`${sha256(big)} is ${big.length} bytes, too large`);
    expect(await store.images.get('registry.example/team/big:1')).toBeUndefined();
  });

  it('put takes a config or layer that only claims to be a manifest as a leaf, as the registry accepted it', async () => {
    const notManifest = randomBytes(2000);
    const big = randomBytes(MAX_MANIFEST_BYTES + 1);
    const odd = json({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: desc(MediaType.ociIndex, notManifest),
      layers: [desc(MediaType.ociManifest, big)],
    });
    for (const b of [notManifest, big, odd]) await put(store, b);
    await store.images.put({ name: 'registry.example/team/odd:1', target: desc(MediaType.ociManifest, odd), labels: {} });
    expect((await store.stat(sha256(odd)))!.labels).toMatchObject({
      'containerd.io/gc.ref.content.config': sha256(notManifest),
      'containerd.io/gc.ref.content.l.0': sha256(big),
    });
    expect((await store.images.get('registry.example/team/odd:1'))?.target.digest).toBe(sha256(odd));
  });

  it('put refuses a target that is not held', async () => {
    await expect(store.images.put({ name: 'registry.example/none:1', target: missing, labels: {} }))
      .rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('ContainerdStore events', () => {
  it('leaves out the changes of other namespaces', async () => {
    const events = await subscribe(store);
    const other = await ContainerdStore.connect({ socket, namespace: `${namespace}-other`, logger });
    const bytes = randomBytes(500);
    const target = { mediaType: 'application/octet-stream', digest: sha256(bytes), size: bytes.length };
    await put(other, bytes);
    await other.images.put({ name: 'events.example/other:1', target, labels: {} });
    await other.images.delete('events.example/other:1');
    await other.delete(sha256(bytes));
    await other.close();
    // Ours come after theirs: had theirs been let through, they would have arrived first.
    await store.images.put({ name: 'events.example/own:1', target: (await putImage(store)), labels: {} });
    const blobAdded: StoreEvent = { type: 'blob-added', digest: expect.any(String) as string };
    expect(await events.settle(4)).toEqual([blobAdded, blobAdded, blobAdded, { type: 'image-added', name: 'events.example/own:1' }]);
  });
});
