import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { untilStalled } from './until-stalled.js';

async function* slowSource(gapsMs: number[]): AsyncGenerator<number> {
  for (const [i, gap] of gapsMs.entries()) {
    await sleep(gap);
    yield i;
  }
}

it('calls onStall when the source sends nothing for the time given', async () => {
  let stalled = false;
  const got: number[] = [];
  for await (const n of untilStalled(slowSource([0, 0, 200]), 60, () => (stalled = true))) got.push(n);
  expect(stalled).toBe(true);
  expect(got).toEqual([0, 1, 2]);
});

it('does not count the time its reader takes (a bandwidth limit waiting) as a stall', async () => {
  let stalled = false;
  for await (const _ of untilStalled(slowSource([0, 0, 0]), 60, () => (stalled = true))) await sleep(150);
  expect(stalled).toBe(false);
});
