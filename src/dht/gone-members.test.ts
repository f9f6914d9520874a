import { describe, expect, it } from 'vitest';
import { GoneMembers } from './gone-members.js';

const PERIOD = 1_000;
const dueAt = (gone: GoneMembers, at: number) => gone.sweep(PERIOD, at).map((d) => d.id);

describe('members gone', () => {
  it('dials a lost member again at once, then after 1, 3, 7 … periods, for a day', () => {
    const gone = new GoneMembers(4);
    gone.add('lost', ['/ip4/10.0.0.2/tcp/4001'], 0);
    const dialed: number[] = [];
    for (let at = 500; at < 20_000; at += PERIOD) if (dueAt(gone, at).length) dialed.push(at);
    expect(dialed).toEqual([500, 1_500, 3_500, 7_500, 15_500]);
    expect(gone.sweep(PERIOD, 31_500)).toEqual([{ id: 'lost', addrs: ['/ip4/10.0.0.2/tcp/4001'] }]);
    expect(gone.droppedAt('lost')).toBe(0); // a list older than the drop does not bring it back meanwhile
    dueAt(gone, 24 * 3600_000 + 1);
    expect(gone.droppedAt('lost')).toBeUndefined();
  });

  it('never dials a member that left or went silent, and forgets it after the expiry periods', () => {
    const gone = new GoneMembers(4);
    gone.add('left', undefined, 0);
    expect(dueAt(gone, 500)).toEqual([]);
    expect(dueAt(gone, 4_000)).toEqual([]);
    expect(gone.droppedAt('left')).toBe(0);
    dueAt(gone, 4_001);
    expect(gone.droppedAt('left')).toBeUndefined();
  });

  it('forgets a member heard of again', () => {
    const gone = new GoneMembers(4);
    gone.add('back', ['/ip4/10.0.0.3/tcp/4001'], 0);
    gone.delete('back');
    expect(gone.droppedAt('back')).toBeUndefined();
    expect(dueAt(gone, 500)).toEqual([]);
  });
});
