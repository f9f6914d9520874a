import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { MemoryStore } from '../store/memory-store.js';
import { putBlob } from '../store/store.js';
import { digestOf } from '../oci/digest.js';
import { pushLabels } from '../oci/tag-push.js';
import { NewestPushes } from './newest-pushes.js';
import { localPush } from '../../test/helpers/pushes.js';

const NAME = 'docker.io/library/same:1';
const digest = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;

describe('newest pushes', () => {
  test('keep the newest push of a name whatever order the pushes arrive in', () => {
    const a = new NewestPushes('self');
    const b = new NewestPushes('self');
    const older = { clock: 100, node: 'n1', digest: digest(1) };
    const newer = { clock: 100, node: 'n2', digest: digest(2) }; // same clock: the higher peer id wins
    expect([a.observe(NAME, older), a.observe(NAME, newer)]).toEqual([true, true]);
    expect([b.observe(NAME, newer), b.observe(NAME, older)]).toEqual([true, false]);
    expect(a.get(NAME)).toEqual(newer);
    expect(b.get(NAME)).toEqual(newer);
    expect(b.observe(NAME, newer)).toBe(false); // the same event again changes nothing
    expect(a.isNewest(NAME, older)).toBe(false);
    expect(a.isNewest(NAME, newer)).toBe(true);
  });

  test('stamp a local push newer than every push of its name known, even one from a clock far ahead', () => {
    const pushes = new NewestPushes('self');
    pushes.observe(NAME, { clock: Date.now() + 3_600_000, node: 'ahead', digest: digest(1) });
    const own = localPush(pushes, NAME, digest(2));
    expect(own).toMatchObject({ node: 'self', digest: digest(2) });
    expect(pushes.get(NAME)).toEqual(own);
    expect(localPush(pushes, 'docker.io/library/other:1', digest(3)).clock).toBeLessThanOrEqual(Date.now());
  });

  test('forget the names pushed longest ago past their bound', () => {
    const pushes = new NewestPushes('self', 2);
    for (const [i, name] of ['a:1', 'b:1', 'c:1'].entries()) pushes.observe(name, { clock: 10 + i, node: 'n', digest: digest(1) });
    expect(['a:1', 'b:1', 'c:1'].map((n) => pushes.get(n)?.clock)).toEqual([undefined, 11, 12]);
  });

  test('come back after a restart from the stamps in the image records', async () => {
    const store = new MemoryStore();
    const body = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":null,"layers":[]}');
    await putBlob(store, body, digestOf(body));
    const target = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digestOf(body), size: body.length };
    await store.images.put({ name: NAME, target, labels: pushLabels({ clock: 42, node: 'n2' }) });
    await store.images.put({ name: 'docker.io/library/untracked:1', target, labels: {} });
    const pushes = new NewestPushes('self');
    await pushes.load(store);
    expect(pushes.get(NAME)).toEqual({ clock: 42, node: 'n2', digest: target.digest });
    expect(pushes.get('docker.io/library/untracked:1')).toBeUndefined();
  });

  test('keep what they know across a restart in their file, oldest forgotten first', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pushes-'));
    try {
      const file = join(dir, 'pushes.json');
      const before = new NewestPushes('self', 2);
      await before.persist(file, pino({ level: 'silent' }));
      before.observe('a:1', { clock: 1, node: 'n1', digest: digest(1) });
      before.observe('b:1', { clock: 2, node: 'n1', digest: digest(2) });
      before.observe('c:1', { clock: 3, node: 'n2', digest: digest(3) }); // a:1 is forgotten
      await before.save();
      const after = new NewestPushes('self', 2);
      await after.persist(file, pino({ level: 'silent' }));
      expect([after.get('a:1'), after.get('b:1'), after.get('c:1')]).toEqual([undefined, { clock: 2, node: 'n1', digest: digest(2) }, { clock: 3, node: 'n2', digest: digest(3) }]);
      after.observe('d:1', { clock: 4, node: 'n2', digest: digest(4) });
      expect(after.get('b:1')).toBeUndefined(); // the oldest before the restart goes first after it too
      // Written a second after a change without being asked.
      await new Promise((r) => setTimeout(r, 1_500));
      expect((JSON.parse(await readFile(file, 'utf8')) as { name: string }[]).map((p) => p.name)).toEqual(['c:1', 'd:1']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('write again what could not be written (a full disk), at the next save: the one at shutdown too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pushes-'));
    try {
      const file = join(dir, 'not-yet', 'pushes.json'); // its directory missing: the write fails
      const pushes = new NewestPushes('self');
      const warnings: string[] = [];
      await pushes.persist(file, pino({ level: 'warn' }, { write: (l: string) => void warnings.push(JSON.parse(l).msg) }));
      pushes.observe('a:1', { clock: 1, node: 'n1', digest: digest(1) });
      await pushes.save();
      pushes.observe('b:1', { clock: 2, node: 'n1', digest: digest(2) });
      await pushes.save();
      expect(warnings).toHaveLength(1); // not one a second while the disk stays full
      await mkdir(join(dir, 'not-yet'));
      await pushes.save();
      expect((JSON.parse(await readFile(file, 'utf8')) as { name: string }[]).map((p) => p.name)).toEqual(['a:1', 'b:1']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
