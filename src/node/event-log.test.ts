import { describe, expect, it } from 'vitest';
import { EventLog } from './event-log.js';

describe('EventLog', () => {
  it('gives a poller each event once, and a poller from before a restart what happened since', async () => {
    const before = new EventLog();
    for (let i = 0; i < 5; i++) before.record({ kind: 'pushed', image: `old:${i}` });
    const seen = before.since(0).at(-1)!.seq;
    await new Promise((r) => setTimeout(r, 20));
    // The daemon restarted, and recorded more events than the page had seen of the old one (its fifth).
    const log = new EventLog();
    for (let i = 0; i < 6; i++) log.record({ kind: 'pushed', image: `new:${i}` });
    expect(log.since(seen)).toHaveLength(6);
    const restarted = new EventLog();
    restarted.record({ kind: 'pushed', image: 'app:1' });
    restarted.record({ kind: 'pushed', image: 'app:2' });
    expect(restarted.since(seen).map((e) => e.image)).toEqual(['app:1', 'app:2']);
    const [first] = restarted.since(0);
    expect(restarted.since(first.seq).map((e) => e.image)).toEqual(['app:2']);
    expect(restarted.since(first.seq + 1)).toEqual([]);
    // A page ahead of this daemon's numbers (the clock was set back): it gets everything kept.
    expect(restarted.since(first.seq + 10 ** 9).map((e) => e.image)).toEqual(['app:1', 'app:2']);
  });
});
