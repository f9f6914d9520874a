// The sweep of a deleted image's blobs on a store without a collector of its own: not while its record is still there.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, expect, it } from 'vitest';
import { digests, putImage, record } from './conformance-kit.js';
import { MemoryStore } from './memory-store.js';
import { OrphanSweeper } from './orphan-sweeper.js';

const dir = mkdtempSync(join(tmpdir(), 'orphan-sweeper-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('leaves a deleted image\'s blobs to a sweep after its record is gone, not to one that runs while it is still there', async () => {
  const store = new MemoryStore();
  const sweeper = new OrphanSweeper(store, 0, pino({ level: 'silent' }), () => 0, join(dir, 'orphans.json'));
  const target = await putImage(store);
  await store.images.put(record('example/gone:1', target));
  const removed = await sweeper.removing(target);
  await sweeper.sweep(); // another delete's sweep, due meanwhile (--gc-delay 0): the record is still there
  expect(await digests(store)).not.toEqual([]);
  await store.images.delete('example/gone:1');
  removed();
  await sweeper.sweep();
  expect(await digests(store)).toEqual([]);
  await sweeper.close();
});
