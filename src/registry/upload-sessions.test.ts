// Upload sessions against a store that stops answering at the commit (containerd restarting): the client is
// told to try again, and its retry finds the session and commits the blob.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { delayCommits, sha256 } from '../store/conformance-kit.js';
import { MemoryStore } from '../store/memory-store.js';
import { StoreUnavailableError } from '../store/store.js';
import { UploadSessions } from './upload-sessions.js';

/** Sessions over a memory store whose commits first wait for `before` (it may throw, as a store that does not answer). */
function sessionsWhoseCommits(before: () => Promise<void>): { store: MemoryStore; sessions: UploadSessions } {
  const store = new MemoryStore();
  delayCommits(store, before);
  return { store, sessions: new UploadSessions(store, { maxBlobBytes: 1 << 20, idleTimeoutMs: 60_000, maxSessions: 10, maxSessionsPerClient: 10 }, pino({ level: 'silent' })) };
}

describe('UploadSessions.finish', () => {
  it('keeps the session when the store did not answer, so that the retry the 503 asks for commits the blob', async () => {
    let failures = 1;
    const { store, sessions } = sessionsWhoseCommits(async () => {
      if (failures-- > 0) throw new StoreUnavailableError('committing a blob');
    });
    const bytes = randomBytes(1000);
    const digest = sha256(bytes);
    const { id } = await sessions.start('app', '127.0.0.1');
    await sessions.append('app', id, Readable.from([bytes]));
    await expect(sessions.finish('app', id, digest, {}, true)).rejects.toBeInstanceOf(StoreUnavailableError);
    expect((await sessions.finish('app', id, digest, {}, true)).digest).toBe(digest);
    expect(await store.stat(digest)).toMatchObject({ size: 1000 });
    expect(sessions.size).toBe(0);

    // A request that brought bytes (a monolithic POST, a PUT with a body) would bring them again: its session ends.
    failures = 1;
    const again = await sessions.start('app', '127.0.0.1');
    await sessions.append('app', again.id, Readable.from([bytes]));
    await expect(sessions.finish('app', again.id, digest, {})).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(sessions.size).toBe(0);
    await sessions.close();
  });

  it('refuses to cancel an upload while it is committed (too late: it may be published all the same)', async () => {
    let release!: () => void;
    const { sessions } = sessionsWhoseCommits(() => new Promise<void>((r) => (release = r)));
    const bytes = randomBytes(100);
    const digest = sha256(bytes);
    const { id } = await sessions.start('app', '127.0.0.1');
    await sessions.append('app', id, Readable.from([bytes]));
    const committing = sessions.finish('app', id, digest, {});
    await new Promise((r) => setImmediate(r));
    await expect(sessions.cancel('app', id)).rejects.toMatchObject({ status: 416 });
    release();
    expect((await committing).digest).toBe(digest);
    await sessions.close();
  });
});

describe('UploadSessions at a cap', () => {
  it('gives the place of a client\'s quietest session that took bytes once it has been quiet a while; refuses while all are in use or waiting their turn', async () => {
    const store = new MemoryStore();
    const sessions = new UploadSessions(store, { maxBlobBytes: 1 << 20, idleTimeoutMs: 60_000, maxSessions: 10, maxSessionsPerClient: 2, reclaimAfterMs: 200 }, pino({ level: 'silent' }));
    const first = await sessions.start('app', '127.0.0.1'); // abandoned: an interrupted push never cancels it
    await sessions.append('app', first.id, Readable.from([randomBytes(100)]));
    const second = await sessions.start('app', '127.0.0.1');
    await expect(sessions.start('app', '127.0.0.1')).rejects.toMatchObject({ status: 429 }); // both just used
    await new Promise((r) => setTimeout(r, 250));
    await sessions.append('app', second.id, Readable.from([randomBytes(100)])); // in use again
    const third = await sessions.start('app', '127.0.0.1');
    expect(() => sessions.get('app', first.id)).toThrow(/unknown/i);
    expect(sessions.get('app', second.id).offset).toBe(100);
    // One that took no bytes yet may be a layer opened ahead of its turn: it keeps its place.
    await new Promise((r) => setTimeout(r, 250));
    const fourth = await sessions.start('app', '127.0.0.1');
    expect(() => sessions.get('app', second.id)).toThrow(/unknown/i);
    await expect(sessions.start('app', '127.0.0.1')).rejects.toMatchObject({ status: 429 });
    expect([sessions.get('app', third.id).offset, sessions.get('app', fourth.id).offset]).toEqual([0, 0]);
    await sessions.close();
  });
});
