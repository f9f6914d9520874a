import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../store/memory-store.js';
import { put, putImage, record } from '../store/conformance-kit.js';
import { trackingUse, UseLog } from './use-log.js';

const log = pino({ level: 'silent' });

describe('UseLog', () => {
  let dir: string;
  beforeEach(async () => (dir = await mkdtemp(join(tmpdir(), 'use-log-'))));
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('warns once while its file cannot be written (a full disk), and writes it once it can', async () => {
    const warnings: string[] = [];
    const uses = await UseLog.open(join(dir, 'not-yet', 'last-use.json'), pino({ level: 'warn' }, { write: (l: string) => void warnings.push(JSON.parse(l).msg) }));
    for (let i = 0; i < 3; i++) {
      uses.touch(`app:${i}`, 1000 + i);
      await uses.save();
    }
    expect(warnings).toHaveLength(1);
    await mkdir(join(dir, 'not-yet'));
    await uses.close();
    expect(Object.keys(JSON.parse(await readFile(join(dir, 'not-yet', 'last-use.json'), 'utf8')))).toEqual(['app:0', 'app:1', 'app:2']);
  });

  it('keeps last uses across a restart, counts the never used from when first asked, forgets what left', async () => {
    const file = join(dir, 'last-use.json');
    const uses = await UseLog.open(file, log);
    uses.touch('app:1', 1000);
    expect(uses.lastUse(['app:1', 'sha256:aa'], 5000)).toBe(1000);
    expect(uses.lastUse(['new:1'], 7000)).toBe(7000);
    expect(uses.lastUse(['new:1'], 9000)).toBe(7000);
    await uses.close();
    const again = await UseLog.open(file, log);
    expect(again.lastUse(['app:1'], 9000)).toBe(1000);
    again.retain(new Set(['new:1']));
    expect(again.lastUse(['app:1'], 9000)).toBe(9000);
    await again.close();
  });

  it('sets no timer while nothing changes, and saves a change within seconds', async () => {
    const file = join(dir, 'last-use.json');
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    try {
      const uses = await UseLog.open(file, log);
      expect(vi.getTimerCount(), 'timers of an idle use log').toBe(0);
      uses.touch('app:1', 1000);
      uses.touch('app:2', 2000);
      expect(vi.getTimerCount()).toBe(1);
      await vi.advanceTimersByTimeAsync(5_000);
      const saved = async () => JSON.parse(await readFile(file, 'utf8').catch(() => '{}')) as Record<string, number>;
      while (!(await saved())['app:2']) await new Promise((r) => setImmediate(r));
      expect(await saved()).toEqual({ 'app:1': 1000, 'app:2': 2000 });
      expect(vi.getTimerCount(), 'timers once saved').toBe(0);
      await uses.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('notes what the registry reads through the store: blobs opened or sent by path, images looked up; never what is absent', async () => {
    const uses = await UseLog.open(join(dir, 'last-use.json'), log);
    const store = new MemoryStore();
    const target = await putImage(store);
    await store.images.put(record('app:1', target));
    const blob = await put(store, Buffer.from('layer'));
    const tracked = trackingUse(store, uses);
    await tracked.images.get('app:1');
    (await tracked.open(blob.digest)).stream.destroy();
    tracked.localPath(target.digest);
    const absent = `sha256:${'0'.repeat(64)}`;
    await expect(tracked.open(absent)).rejects.toThrow();
    expect(await tracked.images.get('absent:1')).toBeUndefined();
    for (const key of ['app:1', blob.digest, target.digest]) expect(uses.lastUse([key], 1)).toBeGreaterThan(1);
    for (const key of ['absent:1', absent]) expect(uses.lastUse([key], 1), `${key} is noted as used`).toBe(1);
    await uses.close();
  });
});
