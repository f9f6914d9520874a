import { describe, expect, it } from 'vitest';
import { checkWatermarks, parseWatermark, planEviction, type Candidate } from './eviction.js';

const image = (key: string, lastUse: number, copies: number, blobs: string[]): Candidate => ({ key, digest: blobs[0], kind: 'image', lastUse, copies, blobs });
const sizes = (entries: Record<string, number>) => new Map(Object.entries(entries));

describe('planEviction', () => {
  const blobSizes = sizes({ a: 10, b: 20, c: 30, shared: 100, base: 1000 });

  it('takes the least recently used first and stops once enough is freed', () => {
    const candidates = [image('new', 300, 3, ['c']), image('old', 100, 3, ['a']), image('mid', 200, 3, ['b'])];
    const { evict, freed } = planEviction({ candidates, sizes: blobSizes, kept: new Set(), excess: 25, minCopies: 2 });
    expect(evict.map((p) => p.candidate.key)).toEqual(['old', 'mid']);
    expect(freed).toBe(30);
  });

  it('takes images only this node (or too few others) hold last, and says so', () => {
    const candidates = [image('only-here', 100, 0, ['a']), image('one-other', 150, 1, ['b']), image('everywhere', 400, 5, ['c'])];
    const first = planEviction({ candidates, sizes: blobSizes, kept: new Set(), excess: 30, minCopies: 2 });
    expect(first.evict.map((p) => [p.candidate.key, p.lastCopies])).toEqual([['everywhere', false]]);
    const all = planEviction({ candidates, sizes: blobSizes, kept: new Set(), excess: 55, minCopies: 2 });
    expect(all.evict.map((p) => [p.candidate.key, p.lastCopies])).toEqual([['everywhere', false], ['only-here', true], ['one-other', true]]);
  });

  it('frees a shared blob only when every candidate using it went, and never a kept one', () => {
    const candidates = [image('x', 100, 3, ['a', 'shared', 'base']), image('y', 200, 3, ['b', 'shared', 'base'])];
    const { evict, freed } = planEviction({ candidates, sizes: blobSizes, kept: new Set(['base']), excess: 1000, minCopies: 2 });
    expect(evict.map((p) => [p.candidate.key, p.freedBlobs])).toEqual([['x', ['a']], ['y', ['b', 'shared']]]);
    expect(freed).toBe(130);
  });

  it('leaves an image whose every blob stays whatever goes: removing it would free nothing', () => {
    const candidates = [image('all-kept', 100, 3, ['base']), image('frees', 200, 3, ['a', 'base'])];
    const { evict } = planEviction({ candidates, sizes: blobSizes, kept: new Set(['base']), excess: 5000, minCopies: 2 });
    expect(evict.map((p) => p.candidate.key)).toEqual(['frees']);
  });

  it('plans nothing when nothing is in excess', () => {
    expect(planEviction({ candidates: [image('x', 1, 3, ['a'])], sizes: blobSizes, kept: new Set(), excess: 0, minCopies: 2 }).evict).toEqual([]);
  });
});

describe('watermarks', () => {
  it('are sizes or percentages of the filesystem', () => {
    expect(parseWatermark('50GiB', '--disk-high')).toEqual({ bytes: 50 * 1024 ** 3 });
    expect(parseWatermark('80%', '--disk-high')).toEqual({ percent: 80 });
    expect(() => parseWatermark('120%', '--disk-high')).toThrow(/between 0 and 100/);
    expect(() => parseWatermark('lots', '--disk-low')).toThrow(/--disk-low expects bytes/);
  });

  it('come in pairs of one kind, low below high', () => {
    expect(() => checkWatermarks({ percent: 80 }, undefined)).toThrow(/go together/);
    expect(() => checkWatermarks({ percent: 80 }, { bytes: 10 })).toThrow(/both be sizes or both/);
    expect(() => checkWatermarks({ bytes: 10 }, { bytes: 20 })).toThrow(/below/);
    expect(() => checkWatermarks({ percent: 80 }, { percent: 60 })).not.toThrow();
  });
});
