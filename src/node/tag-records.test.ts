import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { MemoryStore } from '../store/memory-store.js';
import { putBlob } from '../store/store.js';
import { digestOf } from '../oci/digest.js';
import { pushOf } from '../oci/tag-push.js';
import { NewestPushes } from './newest-pushes.js';
import { TagRecords } from './tag-records.js';
import { localPush } from '../../test/helpers/pushes.js';

const NAME = 'docker.io/library/same:1';
const MEDIA = 'application/vnd.oci.image.manifest.v1+json';

async function manifest(store: MemoryStore, n: number) {
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA, config: { mediaType: 'x', digest: `sha256:${String(n).repeat(64)}`, size: 1 }, layers: [] }));
  await putBlob(store, body, digestOf(body));
  return { mediaType: MEDIA, digest: digestOf(body), size: body.length };
}

function setup() {
  const store = new MemoryStore();
  const pushes = new NewestPushes('self');
  return { store, pushes, records: new TagRecords(store, pushes, pino({ level: 'silent' })) };
}

describe('tag records', () => {
  test('a copy finishing after a newer one does not name the image', async () => {
    const { store, pushes, records } = setup();
    const [older, newer] = [await manifest(store, 1), await manifest(store, 2)];
    const [o, n] = [{ clock: 1, node: 'a' }, { clock: 2, node: 'b' }];
    pushes.observe(NAME, { ...o, digest: older.digest });
    pushes.observe(NAME, { ...n, digest: newer.digest });
    // Both copies finish at once, the newer first.
    const written = await Promise.all([records.write(NAME, newer, n), records.write(NAME, older, o)]);
    expect(written).toEqual([true, false]);
    const record = await store.images.get(NAME);
    expect(record?.target.digest).toBe(newer.digest);
    expect(pushOf(record!.labels)).toEqual(n);
  });

  test('an older push does not name the image again once the newest pushes known forgot its name', async () => {
    const store = new MemoryStore();
    const pushes = new NewestPushes('self', 2);
    const records = new TagRecords(store, pushes, pino({ level: 'silent' }));
    const [older, newer] = [await manifest(store, 1), await manifest(store, 2)];
    pushes.observe(NAME, { clock: 200, node: 'b', digest: newer.digest });
    expect(await records.write(NAME, newer, { clock: 200, node: 'b' })).toBe(true);
    // Two other names pushed since: this one is forgotten.
    pushes.observe('docker.io/library/other:1', { clock: 300, node: 'b', digest: older.digest });
    pushes.observe('docker.io/library/other:2', { clock: 301, node: 'b', digest: older.digest });
    expect(pushes.get(NAME)).toBeUndefined();
    expect(await records.write(NAME, older, { clock: 100, node: 'a' })).toBe(false);
    expect((await store.images.get(NAME))?.target.digest).toBe(newer.digest);
  });

  test('a push to this node stamped while a copy was written names the image again', async () => {
    const { store, pushes, records } = setup();
    const [copied, local] = [await manifest(store, 1), await manifest(store, 2)];
    const gossiped = { clock: 1, node: 'a' };
    pushes.observe(NAME, { ...gossiped, digest: copied.digest });
    // The copy's record is written while the registry stores a local push (stamped newer) that finished first.
    const original = store.images.put.bind(store.images);
    let stamped = false;
    store.images.put = async (record) => {
      if (!stamped) {
        stamped = true;
        const own = localPush(pushes, NAME, local.digest);
        await original({ name: NAME, target: local, labels: { clock: String(own.clock) } });
      }
      return original(record);
    };
    expect(await records.write(NAME, copied, gossiped)).toBe(true);
    const record = await store.images.get(NAME);
    expect(record?.target).toEqual(local);
    expect(pushOf(record!.labels)).toEqual({ clock: pushes.get(NAME)!.clock, node: 'self' });
  });
});
