// Conformance cases for image records and the change events every store raises.
import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { pieces, put, putImage, record, sha256, subscribe, withStore, type OpenStore } from './conformance-kit.js';
import type { ImageRecord, Store, StoreEvent } from './store.js';

const byName = (a: ImageRecord, b: ImageRecord) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const listed = async (store: Store) => (await store.images.list()).sort(byName);

export function imageCases(open: OpenStore): void {
  it('puts, gets, lists and deletes image records', withStore(open, async (store) => {
    expect(await store.images.list()).toEqual([]);
    const target = await putImage(store);
    const app = record('docker.io/library/app:1', target, { team: 'a' });
    const tool = record('docker.io/library/tool:latest', target);
    await store.images.put(app);
    await store.images.put(tool);
    expect(await store.images.get(app.name)).toEqual(app);
    expect(await listed(store)).toEqual([app, tool]);
    expect(await store.images.delete(app.name)).toBe(true);
    expect(await store.images.get(app.name)).toBeUndefined();
    expect(await store.images.delete(app.name)).toBe(false);
    expect(await listed(store)).toEqual([tool]);
    expect(await store.images.get('docker.io/library/never:1')).toBeUndefined();
  }));

  it('updates the record of an existing name', withStore(open, async (store) => {
    const first = await putImage(store);
    const second = await putImage(store);
    const name = 'registry.example/team/app:stable';
    await store.images.put(record(name, first, { v: '1', kept: 'no' }));
    await store.images.put(record(name, second, { v: '2' }));
    expect(await store.images.get(name)).toEqual(record(name, second, { v: '2' })); // labels replaced, not merged
    expect(await listed(store)).toEqual([record(name, second, { v: '2' })]);
  }));

  it('keeps names with a registry port, digests and 240+ characters', withStore(open, async (store) => {
    const target = await putImage(store);
    const long = `registry.example.com:5000/${'team-a/'.repeat(30)}app:${'t'.repeat(20)}`;
    expect(long.length).toBeGreaterThan(240);
    const names = [
      'localhost:5000/app:1',
      '127.0.0.1:5000/ns/app:v1.2.3-rc.1_build',
      `registry.example:443/a/b/c@${target.digest}`,
      long,
      `${long}x`, // differs only past the 240th character
    ];
    for (const name of names) await store.images.put(record(name, target));
    for (const name of names) expect(await store.images.get(name)).toEqual(record(name, target));
    expect((await listed(store)).map((r) => r.name)).toEqual([...names].sort());
    expect(await store.images.delete(long)).toBe(true);
    expect(await store.images.get(`${long}x`)).toEqual(record(`${long}x`, target));
  }));

  it('returns copies: changing a returned record does not change the store', withStore(open, async (store) => {
    const target = await putImage(store);
    const name = 'docker.io/library/app:1';
    const given = record(name, target, { a: '1' });
    await store.images.put(given);
    given.labels.a = 'changed after put';
    const got = (await store.images.get(name))!;
    got.labels.a = 'changed';
    got.target.size = 1;
    (await store.images.list())[0].labels.b = 'added';
    expect(await store.images.get(name)).toEqual(record(name, target, { a: '1' }));
  }));
}

// What the events promise alike on every store: blob-added for each blob this store's own commits create
// (none for a commit of a blob already held), blob-removed for delete(), and image-added/-updated/-removed
// for image records, in order, until the signal aborts or the store closes. Honest differences: containerd 1.6 emits no
// content event of its own, so there blob-added comes only from commits made through this process,
// while image and delete events also arrive for changes made by others sharing the namespace; neither
// containerd's GC nor fs's orphan sweeper is covered here (containerd's GC raises no event on 1.6).
export function eventCases(open: OpenStore): void {
  it('raises blob and image events for changes, in order', withStore(open, async (store) => {
    const events = await subscribe(store);
    const target = await putImage(store);
    const loose = randomBytes(700);
    await put(store, loose);
    await put(store, loose); // already held: no event
    const name = 'registry.example:5000/team/app:1';
    await store.images.put(record(name, target));
    await store.images.put(record(name, target, { v: '2' }));
    await store.images.delete(name);
    await store.images.delete(name); // nothing to remove: no event
    await store.delete(sha256(loose));
    await store.delete(sha256(loose)); // likewise
    const expected: StoreEvent[] = [
      // putImage commits config and layer before the manifest
      { type: 'blob-added', digest: expect.any(String) as string },
      { type: 'blob-added', digest: expect.any(String) as string },
      { type: 'blob-added', digest: target.digest },
      { type: 'blob-added', digest: sha256(loose) },
      { type: 'image-added', name },
      { type: 'image-updated', name },
      { type: 'image-removed', name },
      { type: 'blob-removed', digest: sha256(loose) },
    ];
    expect(await events.settle(expected.length)).toEqual(expected);
  }));

  it('raises no event for a failed or aborted upload', withStore(open, async (store) => {
    const events = await subscribe(store);
    const bytes = randomBytes(1000);
    const failed = await store.beginUpload();
    await failed.append(pieces(bytes, 100));
    await expect(failed.commit({ digest: sha256(Buffer.from('other')) })).rejects.toThrow();
    await failed.abort();
    const aborted = await store.beginUpload();
    await aborted.append(pieces(bytes, 100));
    await aborted.abort();
    await put(store, bytes); // a marker: its event is the first and only one expected
    expect(await events.settle(1)).toEqual([{ type: 'blob-added', digest: sha256(bytes) }]);
  }));

  it('ends the iteration when the signal aborts', withStore(open, async (store) => {
    const controller = new AbortController();
    const seen: StoreEvent[] = [];
    const done = (async () => {
      for await (const e of store.events(controller.signal)) seen.push(e);
    })();
    controller.abort();
    await expect(done).resolves.toBeUndefined();
    const before = new AbortController();
    before.abort();
    for await (const e of store.events(before.signal)) seen.push(e); // an aborted signal yields nothing
    await put(store, randomBytes(10));
    expect(seen).toEqual([]);
  }));

  it('ends the iteration when the store closes', withStore(open, async (store) => {
    const done = (async () => {
      for await (const e of store.events(new AbortController().signal)) void e;
    })();
    await store.close(); // the harness closes it again: close twice is safe
    await expect(done).resolves.toBeUndefined();
  }));
}
