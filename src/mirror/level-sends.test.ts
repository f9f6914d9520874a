import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { blobsIn, cleanUp, holder, key, onCleanUp } from '../../test/helpers/data-plane.js';
import { FsStore } from '../store/fs-store.js';
import { LevelSends } from './level-sends.js';
import { PeerClient } from './peer-client.js';
import { SEQUENCE_PATH } from './peer-protocol.js';

const KiB = 1024;
/** Whether the promise settled within `ms`. */
const settles = (p: Promise<unknown>, ms: number) => Promise.race([p.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), ms))]);

describe('LevelSends', () => {
  it('holds a sequence back while it is more than 256 KiB ahead of one on another lane, until that one moves', async () => {
    const level = new LevelSends();
    const ahead = level.join('a,b', 0);
    const behind = level.join('a,b', 1000);
    ahead.sent(256 * KiB);
    expect(await settles(ahead.turn(), 50)).toBe(true);
    ahead.sent(64 * KiB);
    const waiting = ahead.turn();
    expect(await settles(waiting, 200)).toBe(false);
    behind.sent(64 * KiB);
    expect(await settles(waiting, 50)).toBe(true);
  });

  it('never holds back sequences of the same lane (children of one node asking the same stripe), nor of other blobs', async () => {
    const level = new LevelSends();
    const a = level.join('a,b', 0);
    level.join('a,b', 0);
    level.join('c', 1000);
    a.sent(10 << 20);
    expect(await settles(a.turn(), 50)).toBe(true);
  });

  it('lets the others go once the one behind leaves, or has not moved for 2 s', async () => {
    const level = new LevelSends();
    const ahead = level.join('a', 0);
    const gone = level.join('a', 1);
    const stuck = level.join('a', 2);
    ahead.sent(1 << 20);
    const waiting = ahead.turn();
    expect(await settles(waiting, 100)).toBe(false);
    gone.leave();
    expect(await settles(waiting, 100)).toBe(false);
    const started = performance.now();
    await waiting;
    expect(performance.now() - started).toBeGreaterThan(1700);
    stuck.leave();
    ahead.leave();
    expect(level.size).toBe(0);
  });
});

describe('a holder sending the stripes of a blob to the trees\' roots', () => {
  afterEach(cleanUp);

  it('keeps the one read fast within reach of the one read slowly, over real connections', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'level-sends-'));
    onCleanUp(() => rm(dir, { recursive: true, force: true }));
    const store = await FsStore.open(dir, pino({ level: 'silent' }));
    onCleanUp(() => store.close());
    const [{ desc }] = await blobsIn(store, [64 << 20]);
    const { endpoint } = await holder('origin', store);
    const client = new PeerClient(key);
    const abort = new AbortController();
    onCleanUp(async () => abort.abort());
    const half = desc.size / 2;
    const ask = (offset: number) => client.request(endpoint, SEQUENCE_PATH, {
      method: 'POST', body: JSON.stringify({ blobs: [{ digest: desc.digest, size: desc.size, offset, length: half }] }), signal: abort.signal,
    });
    const [fast, slow] = await Promise.all([ask(0), ask(half)]);
    let fastBytes = 0, slowBytes = 0;
    fast.body.on('data', (chunk: Buffer) => void (fastBytes += chunk.length));
    slow.body.on('data', (chunk: Buffer) => {
      slowBytes += chunk.length;
      slow.body.pause();
      setTimeout(() => slow.body.resume(), 50);
    });
    fast.body.on('error', () => undefined);
    slow.body.on('error', () => undefined);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    // Unlevelled, the fast one has its 32 MiB within a fraction of a second; levelled, it is ahead of the slow one
    // by no more than the slack and what the sockets' buffers hold.
    expect(slowBytes).toBeGreaterThan(1 << 20);
    expect(fastBytes).toBeLessThan(slowBytes + (16 << 20));
  });
});
