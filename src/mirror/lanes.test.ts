// Lanes that fail together: once one lane of a blob fails, the mirror starts its spool over and asks holders
// for all of it; no other lane of the failed attempt may still use that spool (fillLanes on a real spool).
import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { fillLanes, type Lane, type RangeSource } from './lanes.js';
import type { BlobSource } from './blob-sequence.js';
import { cleanUp, spoolsIn } from '../../test/helpers/data-plane.js';

afterEach(cleanUp);

const MiB = 1 << 20;
const digest = `sha256:${'ab'.repeat(32)}`;

describe('fillLanes', () => {
  it('leaves the spool alone once it has failed, also from a lane whose feeder\'s piece comes after that', async () => {
    const spool = await (await spoolsIn()).create(digest);
    const asked: string[][] = [];
    // No holder sends anything: every range asked for fails, after a moment.
    const rest: RangeSource = async function* (_at, _end, _used, first) {
      asked.push(first);
      await new Promise((r) => setTimeout(r, 20));
      throw new Error('no holder');
    };
    let pieceCame!: (source: BlobSource | undefined) => void;
    const lanes: Lane[] = [
      // Its feeder's piece comes only once the feeder is through with an earlier one: here, after the failure.
      { offset: 0, length: MiB, source: new Promise((r) => (pieceCame = r)), standIns: { ask: ['stand-in'], atOnce: 1 }, endgame: { ready: Promise.resolve(), helpers: ['helper'] } },
      { offset: MiB, length: MiB, source: Promise.resolve(undefined) },
    ];
    const deps = { limited: (bytes: AsyncIterable<Uint8Array>) => bytes, rest, log: pino({ level: 'silent' }) };
    await expect(fillLanes(spool, { size: 2 * MiB, lanes }, new Set(), deps)).rejects.toThrow();
    const before = asked.length;
    // What the mirror does next: starts over, in one lane, and takes the blob from a holder.
    await spool.restart();
    await spool.append(Buffer.alloc(1000, 7));
    pieceCame(undefined);
    await new Promise((r) => setTimeout(r, 100));
    expect(asked.slice(before), 'asked of holders after the failure').toEqual([]);
    expect(spool.laneRange(0), 'one lane, as long as the manifest says the blob is').toEqual({ start: 0, end: 2 * MiB });
    expect(spool.received).toBe(1000);
  });
});
