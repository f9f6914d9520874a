import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { putBlob, StoreUnavailableError } from '../store/store.js';
import { digestOf } from '../oci/digest.js';
import { MemoryStore } from '../store/memory-store.js';
import { MediaType } from '../oci/manifest.js';
import { PUSH_NODE_LABEL, PUSH_REPLICATE_LABEL, pushOf } from '../oci/tag-push.js';
import { NewestPushes } from './newest-pushes.js';
import { pushEvent, pushGossip } from './push-event.js';
import { takerOrder, takerTag } from './replication-plan.js';
import { decodeEvent, encodeEvent } from '../dht/mesh-events.js';

const node = '12D3KooWorigin';
const log = pino({ level: 'silent' });

async function put(store: MemoryStore, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const digest = digestOf(bytes);
  await putBlob(store, bytes, digest);
  return { digest, size: bytes.length };
}

async function image(store: MemoryStore, configBytes: number, layers: Buffer[]): Promise<{ digest: string; size: number; config: string; layers: string[] }> {
  const config = await put(store, Buffer.alloc(configBytes, '{'));
  const stored = await Promise.all(layers.map((l) => put(store, l)));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: stored.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
  }));
  return { ...(await put(store, manifest)), config: config.digest, layers: stored.map((l) => l.digest) };
}

const decoded = (inline: Record<string, string> | undefined) =>
  Object.fromEntries(Object.entries(inline ?? {}).map(([d, b]) => [d, digestOf(Buffer.from(b, 'base64'))]));

describe('push events', () => {
  test('carry the manifest, the config and small layers, each under its own digest', async () => {
    const store = new MemoryStore();
    const img = await image(store, 700, [Buffer.alloc(100, 1), Buffer.alloc(200 << 10, 2)]);
    const event = await pushEvent(store, { image: 'docker.io/library/app:1', digest: img.digest, node, clock: 1 }, [], log);
    expect(event).toMatchObject({ type: 'image-pushed', image: 'docker.io/library/app:1', digest: img.digest, node, clock: 1 });
    const inline = decoded(event.inline);
    expect(Object.keys(inline).sort()).toEqual([img.digest, img.config, img.layers[0]].sort());
    for (const [digest, actual] of Object.entries(inline)) expect(actual).toBe(digest);
  });

  test('stay small: what does not fit is left to the takers to fetch', async () => {
    const store = new MemoryStore();
    const img = await image(store, 60 << 10, []);
    const event = await pushEvent(store, { image: 'docker.io/library/app:2', digest: img.digest, node, clock: 1, replicate: 'none' }, [], log);
    expect(Object.keys(event.inline ?? {})).toEqual([img.digest]);
    expect(event.replicate).toBe('none');
  });

  test('an index brings its platform manifests along', async () => {
    const store = new MemoryStore();
    const amd = await image(store, 300, []);
    const arm = await image(store, 400, []);
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [amd, arm].map((m) => ({ mediaType: MediaType.ociManifest, digest: m.digest, size: m.size })),
    }));
    const { digest } = await put(store, index);
    const event = await pushEvent(store, { image: 'docker.io/library/multi:1', digest, node, clock: 1 }, [], log);
    expect(Object.keys(event.inline ?? {}).sort()).toEqual([digest, amd.digest, arm.digest, amd.config, arm.config].sort());
  });

  test('name the takers, in the image\'s order, by tags that a thousand of fit beside the inlined blobs', async () => {
    const store = new MemoryStore();
    const img = await image(store, 700, [Buffer.alloc(100, 1)]);
    const takers = Array.from({ length: 1000 }, (_, i) => `12D3KooWpeer${i}`);
    const event = await pushEvent(store, { image: 'docker.io/library/app:6', digest: img.digest, node, clock: 1 }, takers, log);
    expect(event.takers).toEqual(takerOrder(img.digest, takers).map(takerTag));
    expect(new Set(event.takers).size).toBe(1000);
    expect(Object.keys(event.inline ?? {})).toContain(img.config);
    expect(decodeEvent(encodeEvent(event)).event).toEqual(event);
    // No takers known: each plans from its own view.
    expect((await pushEvent(store, { image: 'docker.io/library/app:7', digest: img.digest, node, clock: 1 }, [], log)).takers).toBeUndefined();
  });

  test('a root the store does not hold goes out without inline blobs', async () => {
    const event = await pushEvent(new MemoryStore(), { image: 'docker.io/library/app:3', digest: `sha256:${'0'.repeat(64)}`, node, clock: 1 }, [], log);
    expect(event.inline).toBeUndefined();
  });

  test('a store that cannot read the small blobs does not keep the push from going out, with its takers', async () => {
    const store = new MemoryStore();
    const img = await image(store, 100, [Buffer.alloc(1000, 1)]);
    store.open = async () => {
      throw new StoreUnavailableError('containerd is not answering');
    };
    const event = await pushEvent(store, { image: 'docker.io/library/app:8', digest: img.digest, node, clock: 1 }, ['a', 'b'], log);
    expect(event.inline).toBeUndefined();
    expect(event.takers).toEqual(takerOrder(img.digest, ['a', 'b']).map(takerTag));
  });

  test("a push's record keeps the policy it carried, for members that missed its gossip", () => {
    const gossip = pushGossip(new MemoryStore(), { id: node, publish: async () => undefined }, new NewestPushes(node), () => [], pino({ level: 'silent' }));
    const target = { mediaType: MediaType.ociManifest, digest: `sha256:${'1'.repeat(64)}`, size: 2 };
    const carried = gossip.labels('docker.io/library/app:4', target, { replicate: 'label.role=web' });
    expect(carried).toMatchObject({ [PUSH_NODE_LABEL]: node, [PUSH_REPLICATE_LABEL]: 'label.role=web' });
    expect(pushOf(carried)).toMatchObject({ node });
    expect(gossip.labels('docker.io/library/app:5', target, {})).not.toHaveProperty(PUSH_REPLICATE_LABEL);
  });
});
