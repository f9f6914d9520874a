// Helpers shared by the store conformance cases (conformance*.ts) and the tests of what uses a store.
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { digestOf, type Descriptor } from '../oci/digest.js';
import { MediaType } from '../oci/manifest.js';
import type { BlobInfo, ImageRecord, Store, StoreEvent } from './store.js';

/** A fresh, empty store for one test, and how to dispose of it. */
export type OpenStore = () => Promise<{ store: Store; close(): Promise<void> }>;

/** Runs `body` against a fresh store and always disposes of it. */
export function withStore(open: OpenStore, body: (store: Store) => Promise<void>): () => Promise<void> {
  return async () => {
    const { store, close } = await open();
    try {
      await body(store);
    } finally {
      await close();
    }
  };
}

export const sha256 = digestOf;

/** `data` in pieces of `size` bytes, as a request body arrives. */
export async function* pieces(data: Buffer, size: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** Uploads and commits `data` in odd-sized pieces. */
export async function put(store: Store, data: Buffer, labels?: Record<string, string>): Promise<BlobInfo> {
  const upload = await store.beginUpload();
  await upload.append(pieces(data, 64 * 1024 + 7));
  return upload.commit({ digest: sha256(data), size: data.length }, labels);
}

export async function content(store: Store, digest: string, range?: { start: number; end: number }): Promise<Buffer> {
  return readAll((await store.open(digest, range)).stream);
}

export async function digests(store: Store): Promise<string[]> {
  const found: string[] = [];
  for await (const info of store.blobs()) found.push(info.digest);
  return found.sort();
}

/** Stores a config, one layer and the manifest naming them; returns the manifest's descriptor. */
export async function putImage(store: Store): Promise<Descriptor> {
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  const desc = (mediaType: string, b: Buffer): Descriptor => ({ mediaType, digest: sha256(b), size: b.length });
  const config = json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, salt: randomBytes(8).toString('hex') });
  const layer = randomBytes(5000);
  const manifest = json({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: desc('application/vnd.oci.image.config.v1+json', config),
    layers: [desc('application/vnd.oci.image.layer.v1.tar+gzip', layer)],
  });
  for (const b of [config, layer, manifest]) await put(store, b);
  return desc(MediaType.ociManifest, manifest);
}

export const record = (name: string, target: Descriptor, labels: Record<string, string> = {}): ImageRecord => ({ name, target, labels });

/**
 * Subscribes and returns once events are known to flow: containerd confirms no subscription, so a
 * probe image is written until its event shows. Probe events are left out.
 */
export async function subscribe(store: Store): Promise<{ settle(count: number): Promise<StoreEvent[]> }> {
  const controller = new AbortController();
  const probe = `probe.example/events:${randomBytes(4).toString('hex')}`;
  const seen: StoreEvent[] = [];
  let live = false;
  const done = (async () => {
    for await (const e of store.events(controller.signal)) {
      if ('name' in e && e.name === probe) live = true;
      else if (live) seen.push(e);
    }
  })();
  const target = await putImage(store);
  for (let tries = 0; !live; tries++) {
    if (tries === 100) throw new Error(`no ${store.kind} store event arrived within 10 s`);
    await store.images.put(record(probe, target));
    await sleep(100);
  }
  return {
    /** Waits for `count` events and a little more (anything extra would show), then unsubscribes. */
    settle: async (count) => {
      for (let waited = 0; seen.length < count && waited < 10_000; waited += 50) await sleep(50);
      await sleep(200);
      controller.abort();
      await done;
      return seen;
    },
  };
}

/** Makes every upload of `store` wait for `before` at its commit (which may throw, as a store that does not answer). */
export function delayCommits(store: Store, before: () => Promise<void>): void {
  const begin = store.beginUpload.bind(store);
  store.beginUpload = async (digest?: string) => {
    const upload = await begin(digest);
    const commit = upload.commit.bind(upload);
    upload.commit = async (...args) => {
      await before();
      return commit(...args);
    };
    return upload;
  };
}
