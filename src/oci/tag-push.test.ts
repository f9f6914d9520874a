import { describe, expect, test } from 'vitest';
import { comparePushes, nextClock, pushLabels, pushOf, PUSH_CLOCK_LABEL, PUSH_NODE_LABEL } from './tag-push.js';

describe('tag pushes', () => {
  test('the higher clock is newer; equal clocks are decided by the higher peer id', () => {
    expect(comparePushes({ clock: 2, node: 'a' }, { clock: 1, node: 'z' })).toBeGreaterThan(0);
    expect(comparePushes({ clock: 5, node: 'b' }, { clock: 5, node: 'a' })).toBeGreaterThan(0);
    expect(comparePushes({ clock: 5, node: 'a' }, { clock: 5, node: 'b' })).toBeLessThan(0);
    expect(comparePushes({ clock: 5, node: 'a' }, { clock: 5, node: 'a' })).toBe(0);
  });

  test('a name without a stamp is older than any stamped push', () => {
    expect(comparePushes({ clock: 0, node: 'a' }, undefined)).toBeGreaterThan(0);
    expect(comparePushes(undefined, { clock: 0, node: 'a' })).toBeLessThan(0);
    expect(comparePushes(undefined, undefined)).toBe(0);
  });

  test('a new push is stamped with the wall clock, or one past the newest known when this clock is behind', () => {
    expect(nextClock(undefined, 1000)).toBe(1000);
    expect(nextClock({ clock: 400, node: 'a' }, 1000)).toBe(1000);
    expect(nextClock({ clock: 5000, node: 'a' }, 1000)).toBe(5001);
  });

  test('stamps round-trip through image labels; malformed labels are no stamp', () => {
    const push = { clock: 1733356800123, node: '12D3KooWexample' };
    expect(pushOf({ other: 'x', ...pushLabels(push) })).toEqual(push);
    expect(pushOf({})).toBeUndefined();
    expect(pushOf({ [PUSH_CLOCK_LABEL]: '12abc', [PUSH_NODE_LABEL]: 'n' })).toBeUndefined();
    expect(pushOf({ [PUSH_CLOCK_LABEL]: '-1', [PUSH_NODE_LABEL]: 'n' })).toBeUndefined();
    expect(pushOf({ [PUSH_CLOCK_LABEL]: '12' })).toBeUndefined();
  });
});
