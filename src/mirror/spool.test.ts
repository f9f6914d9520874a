// The spool: readers follow a blob as it arrives, and never receive a complete blob that is wrong.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DigestMismatchError } from '../store/store.js';
import { Spools } from './spools.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let dir: string;
let spools: Spools;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'spool-test-'));
  spools = await Spools.open(dir);
});
afterEach(async () => {
  for (const spool of spools.list()) await spools.remove(spool); // closes its file, as the mirror does
  await rm(dir, { recursive: true, force: true });
});

/** Collects what a reader has delivered so far, and whether it ended. */
function follow(stream: NodeJS.ReadableStream) {
  const got = { bytes: [] as Buffer[], ended: false, error: undefined as Error | undefined };
  stream.on('data', (c: Buffer) => got.bytes.push(c));
  stream.on('end', () => (got.ended = true));
  stream.on('error', (err: Error) => (got.error = err));
  return Object.assign(got, { data: () => Buffer.concat(got.bytes) });
}
const tick = () => new Promise((r) => setTimeout(r, 20));
/** Waits until `cond` holds (a loaded machine may take longer than a tick), for at most 2 s. */
async function until(cond: () => boolean): Promise<void> {
  for (const deadline = Date.now() + 2000; !cond() && Date.now() < deadline; ) await tick();
}

describe('Spool', () => {
  it('hands readers what arrived within moments, even when nothing more arrives for a while', async () => {
    const data = randomBytes(200_000);
    const spool = await spools.create(sha(data));
    spool.setSize(data.length);
    const reader = follow(spool.reader());
    await spool.append(data.subarray(0, 1000)); // no flush asked for, and no next chunk to trigger one
    await spool.append(data.subarray(1000, 50_000));
    await new Promise((r) => setTimeout(r, 100));
    expect(reader.data().equals(data.subarray(0, 50_000))).toBe(true); // the blob's final byte is still to come
    await spool.append(data.subarray(50_000));
    await spool.flush();
    spool.verify();
    await until(() => reader.ended);
    expect(reader.ended && reader.data().equals(data)).toBe(true);
    await spools.remove(spool);
  });

  it('hands a reader following the arrivals and readers starting later the same bytes, none changed by later arrivals', async () => {
    const data = randomBytes(3_500_000); // several write chunks
    const spool = await spools.create(sha(data));
    spool.setSize(data.length);
    const head = follow(spool.reader()); // keeps every chunk it got: a buffer reused under it would show as changed bytes
    for (let at = 0, i = 0; at < data.length; at += 99_991, i++) {
      await spool.append(data.subarray(at, at + 99_991));
      if (i % 7 === 0) await tick(); // timed flushes of part of a write chunk
    }
    await spool.flush();
    const behind = follow(spool.reader(2_900_000));
    const farBehind = follow(spool.reader());
    spool.verify();
    await until(() => head.ended && behind.ended && farBehind.ended);
    expect(head.data().equals(data)).toBe(true);
    expect(behind.data().equals(data.subarray(2_900_000))).toBe(true);
    expect(farBehind.data().equals(data)).toBe(true);
  });

  it('writes again what a short write left out (a disk filling up): readers get the bytes that were hashed, not a hole', async () => {
    const probe = await open(join(dir, 'probe'), 'w');
    const FileHandle = Object.getPrototypeOf(probe) as { write: (buf: Buffer, offset: number, length: number, position: number) => Promise<{ bytesWritten: number }> };
    await probe.close();
    const write = FileHandle.write;
    let shortened = 0;
    const spy = vi.spyOn(FileHandle, 'write').mockImplementation(async function (this: unknown, buf, offset, length, position) {
      if (shortened++ === 0) length -= 4096; // as pwrite does at the boundary of a full disk
      return write.call(this, buf, offset, length, position);
    });
    try {
      const data = randomBytes(3 << 20);
      const spool = await spools.create(sha(data));
      spool.setSize(data.length);
      await spool.append(data);
      await spool.flush();
      spool.verify();
      const got = follow(spool.reader());
      await until(() => got.ended || got.error !== undefined);
      expect(got.error).toBeUndefined();
      expect(got.data().equals(data)).toBe(true);
    } finally {
      spy.mockRestore();
    }
  });

  it('delivers bytes as they arrive and the last byte only once verified', async () => {
    const data = randomBytes(100_000);
    const spool = await spools.create(sha(data));
    spool.setSize(data.length);
    const reader = follow(spool.reader());
    await spool.append(data.subarray(0, 60_000));
    await spool.flush();
    await until(() => reader.data().length === 60_000);
    expect(reader.data().length).toBe(60_000);
    await spool.append(data.subarray(60_000));
    await spool.flush();
    await until(() => reader.data().length === data.length - 1);
    expect(reader.data().length).toBe(data.length - 1);
    expect(reader.ended).toBe(false);
    spool.verify();
    await until(() => reader.ended);
    expect(reader.ended).toBe(true);
    expect(reader.data().equals(data)).toBe(true);
    // A range of a partial copy, as the peer data plane serves it.
    const range = follow(spool.reader(10, 19));
    await until(() => range.ended);
    expect(range.data().equals(data.subarray(10, 20))).toBe(true);
  });

  it('fails its readers when the bytes turn out wrong, and starts over clean', async () => {
    const data = randomBytes(50_000);
    const spool = await spools.create(sha(data));
    spool.setSize(data.length);
    const reader = follow(spool.reader());
    await spool.append(randomBytes(50_000));
    await spool.flush();
    expect(() => spool.verify()).toThrow(DigestMismatchError);
    await spool.restart();
    await tick();
    expect(reader.error?.message).toMatch(/did not match/);
    expect(reader.data().length).toBeLessThan(data.length);
    const again = follow(spool.reader());
    await spool.append(data);
    await spool.flush();
    spool.verify();
    await until(() => again.ended);
    expect(again.data().equals(data)).toBe(true);
    expect(again.ended, 'the reader of the second attempt ends with the blob').toBe(true);
    expect(await spool.sized()).toBe(data.length);
  });

  it('refuses bytes past the largest blob it takes, and past the size a holder stated, also after a restart', async () => {
    const capped = await Spools.open(join(dir, 'capped'), 1000);
    try {
      const data = randomBytes(2000);
      const spool = await capped.create(sha(data));
      await expect(spool.append(data.subarray(0, 1001))).rejects.toThrow(DigestMismatchError);
      spool.setSize(600);
      await spool.append(data.subarray(0, 600));
      await expect(spool.append(data.subarray(600, 601))).rejects.toThrow(/more bytes than its lane 0, 0 to 600, holds/);
      await spool.restart(); // that holder's word went with its bytes
      await spool.append(data.subarray(0, 1000));
      await expect(spool.append(data.subarray(1000, 1001))).rejects.toThrow(DigestMismatchError);
      // A manifest's word goes no further: lanes past the largest blob are refused, and a restart keeps the cap.
      const laned = await capped.create(sha(randomBytes(8)));
      expect(() => laned.useLanes([[0, 600], [600, 600]])).toThrow(/said to hold 1200 bytes, more than the 1000 taken/);
      laned.setSize(5000, true);
      await laned.restart();
      expect(laned.laneRange(0)).toEqual({ start: 0, end: 1000 });
    } finally {
      for (const spool of capped.list()) await capped.remove(spool);
    }
  });

  it('ends its readers once verified when no holder stated the size', async () => {
    const data = randomBytes(50_000);
    const spool = await spools.create(sha(data));
    const reader = follow(spool.reader());
    await spool.append(data);
    await spool.flush();
    spool.verify();
    await until(() => reader.ended);
    expect(reader.ended).toBe(true);
    expect(reader.data().equals(data)).toBe(true);
  });

  it('fails waiting readers when the transfer is given up, and removes its file', async () => {
    const data = randomBytes(10_000);
    const spool = await spools.create(sha(data));
    spool.setSize(data.length);
    const reader = follow(spool.reader());
    await spool.append(data.subarray(0, 5000));
    await spools.remove(spool);
    await tick();
    expect(reader.error).toBeDefined();
    expect(spools.get(sha(data))).toBeUndefined();
  });

  it('wakes whoever waits for a digest as soon as its spool states a size, not at the timeout', async () => {
    const digest = sha(Buffer.from('soon'));
    const started = performance.now();
    const waited = spools.sized(digest, 5000);
    await tick();
    const spool = await spools.create(digest);
    setTimeout(() => spool.setSize(4), 30);
    await waited;
    expect(performance.now() - started).toBeLessThan(1000);
    // A spool that ends without a size wakes nobody early.
    await spools.remove(spool);
    const failed = await spools.create(digest);
    const again = performance.now();
    const waitedAgain = spools.sized(digest, 200);
    failed.fail(new Error('no holder'));
    await waitedAgain;
    expect(performance.now() - again).toBeGreaterThanOrEqual(190);
    await spools.remove(failed);
  });

  it('takes a blob in lanes arriving out of order: each range readable as it arrives, the whole verified in order', async () => {
    const data = randomBytes(300_000);
    const spool = await spools.create(sha(data));
    spool.setSize(data.length);
    spool.useLanes([[0, 100_000], [100_000, 100_000], [200_000, 100_000]]);
    const whole = follow(spool.reader());
    const middle = follow(spool.reader(100_000, 199_999)); // what a child in the second stripe asks for
    await spool.append(data.subarray(100_000, 200_000), 1);
    await spool.append(data.subarray(200_000), 2);
    await spool.flush();
    await until(() => middle.ended);
    expect(middle.data().equals(data.subarray(100_000, 200_000))).toBe(true);
    expect(whole.data().length).toBe(0); // nothing contiguous from the start yet
    await spool.append(data.subarray(0, 100_000), 0);
    await spool.flush();
    await until(() => whole.data().length === data.length - 1);
    expect(whole.data().length).toBe(data.length - 1); // the final byte waits for the verification
    spool.verify();
    await until(() => whole.ended);
    expect(whole.data().equals(data)).toBe(true);
    await spools.remove(spool);
  });

  it('splits a lane where its bytes have not arrived yet: the rest is a lane of its own, written at once, the whole verified', async () => {
    const data = randomBytes(200_000);
    const spool = await spools.create(sha(data));
    spool.setSize(data.length);
    spool.useLanes([[0, 50_000], [50_000, 150_000]]);
    await spool.append(data.subarray(50_000, 80_000), 1);
    expect(() => spool.splitLane(1, 70_000)).toThrow(/cannot be split/); // those bytes are here already
    const rest = spool.splitLane(1, 120_000);
    await expect(spool.append(data.subarray(80_000, 130_000), 1)).rejects.toThrow(/more bytes/);
    await spool.append(data.subarray(120_000), rest);
    await spool.append(data.subarray(80_000, 120_000), 1);
    await spool.append(data.subarray(0, 50_000), 0);
    await spool.flush();
    expect(spool.laneReceived(rest)).toBe(80_000);
    spool.verify();
    expect(spool.written).toBe(data.length);
    await spools.remove(spool);
  });

  it('takes of a chunk only what its lane still holds once the lane was split while the chunk waited for a write', async () => {
    const data = randomBytes(200_000);
    const spool = await spools.create(sha(data));
    spool.setSize(data.length);
    spool.useLanes([[0, 200_000]]);
    await spool.append(data.subarray(0, 50_000), 0);
    const flushing = spool.flush();
    // Sent on while the flush writes: the lane is split at 120,000 before this chunk goes in.
    const appending = spool.appendWithin(data.subarray(50_000, 150_000), 0);
    const rest = spool.splitLane(0, 120_000);
    await flushing;
    expect(await appending).toBe(70_000);
    expect(spool.laneRange(0)).toEqual({ start: 0, end: 120_000 });
    expect(spool.laneAt(130_000)).toBe(rest);
    expect(await spool.appendWithin(data.subarray(120_000), rest)).toBe(80_000);
    await spool.flush();
    spool.verify();
    await spools.remove(spool);
  });

  it('a lane of wrong bytes fails the verification of the whole', async () => {
    const data = randomBytes(200_000);
    const spool = await spools.create(sha(data));
    spool.setSize(data.length);
    spool.useLanes([[0, 100_000], [100_000, 100_000]]);
    await spool.append(randomBytes(100_000), 1);
    await spool.append(data.subarray(0, 100_000), 0);
    await spool.flush();
    expect(() => spool.verify()).toThrow(DigestMismatchError);
    await spools.remove(spool);
  });

  it('gives a member reading for another copy the final byte before the verification, a local reader only after', async () => {
    const data = randomBytes(50_000);
    const spool = await spools.create(sha(data));
    spool.setSize(data.length);
    const local = follow(spool.reader());
    const peer = follow(spool.reader(0, undefined, { forPeer: true }));
    await spool.append(data);
    await spool.flush();
    await until(() => peer.ended);
    expect(peer.data().equals(data)).toBe(true);
    expect(local.data().length).toBe(data.length - 1);
    spool.verify();
    await until(() => local.ended);
    expect(local.data().equals(data)).toBe(true);
    await spools.remove(spool);
  });
});
