import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { blobsIn, cleanUp, holder, key, onCleanUp } from '../../test/helpers/data-plane.js';
import { FsStore } from '../store/fs-store.js';
import { LevelSends } from './level-sends.js';
import { PeerClient } from './peer-client.js';
import { SEQUENCE_PATH, type SequenceLevel } from './peer-protocol.js';

const KiB = 1024;
/** Whether the promise settled within `ms`. */
const settles = (p: Promise<unknown>, ms: number) => Promise.race([p.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), ms))]);

describe('LevelSends', () => {
  it('holds a sequence back while it is more than 256 KiB ahead of one on another lane, until that one moves', async () => {
    const level = new LevelSends();
    const ahead = level.join({ key: 'a', lane: 0, lanes: 2 });
    const behind = level.join({ key: 'a', lane: 1000, lanes: 2 });
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
    const a = level.join({ key: 'a', lane: 0, lanes: 1 });
    level.join({ key: 'a', lane: 0, lanes: 1 });
    level.join({ key: 'c', lane: 1000, lanes: 1 });
    a.sent(10 << 20);
    expect(await settles(a.turn(), 50)).toBe(true);
  });

  it('lets the others go once the one behind leaves, or has not moved for 2 s', async () => {
    const level = new LevelSends();
    const ahead = level.join({ key: 'a', lane: 0, lanes: 3 });
    const gone = level.join({ key: 'a', lane: 1, lanes: 3 });
    const stuck = level.join({ key: 'a', lane: 2, lanes: 3 });
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

  it('lets no sequence start before those of the other lanes are asked, or a second has passed', async () => {
    const level = new LevelSends();
    const first = level.join({ key: 'a', lane: 0, lanes: 2 });
    const waiting = first.turn();
    expect(await settles(waiting, 200)).toBe(false);
    level.join({ key: 'a', lane: 1000, lanes: 2 });
    expect(await settles(waiting, 50)).toBe(true);

    const alone = level.join({ key: 'b', lane: 0, lanes: 4 });
    const started = performance.now();
    await alone.turn();
    expect(performance.now() - started).toBeGreaterThan(900);
  });
});

describe('a holder sending the stripes of a blob to the trees\' roots', () => {
  afterEach(cleanUp);

  // Two stripes asked as two sequences, one read slowly: how far apart they are after 2 s. Each is half of
  // a 64 MiB blob, or with `otherBlobs` the first half of a 64 MiB blob of its own (a root holding the other's).
  async function halvesApart(level: Omit<SequenceLevel, 'lane'> | undefined, otherBlobs = false): Promise<{ fastBytes: number; slowBytes: number }> {
    const dir = await mkdtemp(join(tmpdir(), 'level-sends-'));
    onCleanUp(() => rm(dir, { recursive: true, force: true }));
    const store = await FsStore.open(dir, pino({ level: 'silent' }));
    onCleanUp(() => store.close());
    const blobs = (await blobsIn(store, otherBlobs ? [64 << 20, 64 << 20] : [64 << 20])).map((b) => b.desc);
    const { endpoint } = await holder('origin', store);
    const client = new PeerClient(key);
    const abort = new AbortController();
    onCleanUp(async () => abort.abort());
    const half = 32 << 20;
    const ask = (lane: number) => {
      const { digest, size } = blobs[lane % blobs.length];
      const offset = otherBlobs ? 0 : lane * half;
      return client.request(endpoint, SEQUENCE_PATH, {
        method: 'POST', body: JSON.stringify({ blobs: [{ digest, size, offset, length: half }], level: level && { ...level, lane } }), signal: abort.signal,
      });
    };
    const [fast, slow] = await Promise.all([ask(0), ask(1)]);
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
    return { fastBytes, slowBytes };
  }

  it('keeps the one read fast within reach of the one read slowly, over real connections, when they are trees\' roots', async () => {
    // Levelled, the fast one is ahead of the slow one by no more than the slack and what the sockets' buffers hold.
    const push = { key: `sha256:${'a'.repeat(64)}`, lanes: 2 };
    const levelled = await halvesApart(push);
    expect(levelled.slowBytes).toBeGreaterThan(1 << 20);
    expect(levelled.fastBytes).toBeLessThan(levelled.slowBytes + (16 << 20));
    // Roots of one push asking different blobs (one holds the largest already) are levelled with each other too.
    const apart = await halvesApart(push, true);
    expect(apart.slowBytes).toBeGreaterThan(1 << 20);
    expect(apart.fastBytes).toBeLessThan(apart.slowBytes + (16 << 20));
    // Others (a node's children in one tree, stand-ins) are not held back: the fast one has its 32 MiB at once.
    const free = await halvesApart(undefined);
    expect(free.fastBytes).toBe(32 << 20);
  });
});
