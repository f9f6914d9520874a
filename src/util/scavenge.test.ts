import { describe, expect, it, vi } from 'vitest';
import { Scavenger } from './scavenge.js';

describe('Scavenger', () => {
  it('collects the young generation once every so many bytes moved', () => {
    const collect = vi.fn();
    const scavenger = new Scavenger(8 << 20, collect);
    for (let i = 0; i < 7; i++) scavenger.moved(1 << 20);
    expect(collect).not.toHaveBeenCalled();
    scavenger.moved(1 << 20);
    expect(collect).toHaveBeenCalledOnce();
    expect(collect).toHaveBeenCalledWith({ type: 'minor' });
    for (let i = 0; i < 16; i++) scavenger.moved(1 << 20);
    expect(collect).toHaveBeenCalledTimes(3);
  });

  it('does nothing when node runs without --expose-gc', () => {
    expect(() => new Scavenger(1, null).moved(10)).not.toThrow();
  });
});
