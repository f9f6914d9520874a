import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { MemoryStore } from '../store/memory-store.js';
import { putBlob } from '../store/store.js';
import { digestOf } from '../oci/digest.js';
import { MemoryMesh } from '../dht/memory-router.js';
import { waitFor } from '../../test/helpers/wait.js';
import { Holdings } from './holdings.js';

const running: Holdings[] = [];
afterEach(() => running.splice(0).forEach((a) => a.stop()));

async function holdings(arrivingDelayMs: number, prepare: (store: MemoryStore) => void = () => {}) {
  const store = new MemoryStore();
  prepare(store);
  const router = new MemoryMesh().join();
  const a = new Holdings(store, router, pino({ level: 'silent' }), 60_000, arrivingDelayMs);
  running.push(a);
  await a.start();
  return { store, router, a };
}

describe('Holdings', () => {
  test('announces a blob still arriving after the delay, and withdraws it when the transfer fails', async () => {
    const { router, a } = await holdings(100);
    const digest = digestOf(Buffer.from('arriving'));
    const release = a.announceArriving(digest);
    expect(router.held.has(digest)).toBe(false);
    await waitFor('the arriving blob to be announced', () => router.held.has(digest), { timeoutMs: 2000, intervalMs: 10 });
    release();
    await waitFor('the record to be withdrawn', () => !router.held.has(digest), { timeoutMs: 2000, intervalMs: 10 });
  });

  test('a blob that arrives within the delay is announced once, as held', async () => {
    const { store, router, a } = await holdings(300);
    const bytes = Buffer.from('quick');
    const digest = digestOf(bytes);
    const release = a.announceArriving(digest);
    await putBlob(store, bytes, digest);
    release();
    await waitFor('the stored blob to be announced', () => router.held.has(digest), { timeoutMs: 2000, intervalMs: 10 });
    await new Promise((r) => setTimeout(r, 400)); // past the delay: nothing changes
    expect(router.held.has(digest)).toBe(true);
  });

  test('a blob that stops arriving is settled by asking the store about it, not by listing the store', async () => {
    const { store, router, a } = await holdings(1000);
    let listings = 0;
    const blobs = store.blobs.bind(store);
    store.blobs = () => {
      listings++;
      return blobs();
    };
    for (let i = 0; i < 20; i++) {
      const bytes = Buffer.from(`layer ${i}`);
      const release = a.announceArriving(digestOf(bytes));
      await putBlob(store, bytes, digestOf(bytes));
      release();
    }
    const gone = digestOf(Buffer.from('failed'));
    a.announceArriving(gone)();
    await waitFor('all stored blobs to be announced', () => router.held.size === 20, { timeoutMs: 2000, intervalMs: 10 });
    expect(router.held.has(gone)).toBe(false);
    expect(listings).toBe(0);
  });

  test('an image name goes out urgently (a client elsewhere may pull it next), blobs do not', async () => {
    const { store, router } = await holdings(1000);
    const urgent = new Map<string, boolean>();
    const announce = router.announce.bind(router);
    router.announce = (change) => {
      for (const key of change.add ?? []) urgent.set(key, change.urgent === true);
      announce(change);
    };
    const bytes = Buffer.from('{"schemaVersion":2}');
    await putBlob(store, bytes, digestOf(bytes));
    await store.images.put({ name: 'docker.io/library/app:1', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digestOf(bytes), size: bytes.length }, labels: {} });
    await waitFor('the name to be announced', () => urgent.has('docker.io/library/app:1'), { timeoutMs: 2000, intervalMs: 10 });
    expect(urgent.get('docker.io/library/app:1')).toBe(true);
    expect(urgent.get(digestOf(bytes))).toBe(false);
  });
});

describe('Holdings on a store that raises no content events (containerd 1.6)', () => {
  const manifest = Buffer.from('{"schemaVersion":2}');
  const layer = Buffer.from('layer bytes');
  const image = { name: 'docker.io/library/app:1', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digestOf(manifest), size: manifest.length }, labels: {} };

  /** Holdings on a store whose blob-added events never come. */
  const silentContent = () => holdings(1000, (store) => {
    const events = store.events.bind(store);
    store.events = async function* (signal) {
      for await (const e of events(signal)) if (e.type !== 'blob-added') yield e;
    };
  });

  test("announces an image's name no earlier than its content", async () => {
    const { store, router } = await silentContent();
    const heldWithName: boolean[] = [];
    const announce = router.announce.bind(router);
    router.announce = (change) => {
      announce(change);
      if ([...(change.add ?? [])].includes(image.name)) heldWithName.push(router.held.has(digestOf(layer)) && router.held.has(digestOf(manifest)));
    };
    await putBlob(store, layer, digestOf(layer));
    await putBlob(store, manifest, digestOf(manifest));
    await store.images.put(image);
    await waitFor('the name to be announced', () => heldWithName.length > 0, { timeoutMs: 2000, intervalMs: 10 });
    expect(heldWithName).toEqual([true]);
  });

  test('a reconcile asked for while one lists sees what was committed after that listing began', async () => {
    const { store, router, a } = await silentContent();
    const blobs = store.blobs.bind(store);
    let resume!: () => void;
    const paused = new Promise<void>((r) => (resume = r));
    store.blobs = async function* () {
      const listed = [];
      for await (const blob of blobs()) listed.push(blob);
      await paused;
      yield* listed;
    };
    const first = a.reconcile();
    await putBlob(store, layer, digestOf(layer)); // committed after the first run listed
    const second = a.reconcile();
    resume();
    await Promise.all([first, second]);
    expect(router.held.has(digestOf(layer))).toBe(true);
  });

  test('a reconcile asked for while one lists does not run once the holdings is stopped', async () => {
    const { store, a } = await silentContent();
    const blobs = store.blobs.bind(store);
    let listings = 0;
    let resume!: () => void;
    const paused = new Promise<void>((r) => (resume = r));
    store.blobs = async function* () {
      listings++;
      await paused;
      yield* blobs();
    };
    const first = a.reconcile();
    const second = a.reconcile();
    a.stop();
    resume();
    await Promise.all([first, second]);
    expect(listings).toBe(1);
  });
});
