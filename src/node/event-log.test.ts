import { describe, expect, it } from 'vitest';
import { EventLog } from './event-log.js';

describe('EventLog', () => {
  it('gives a poller each event once, and a poller from before a restart what happened since', () => {
    const log = new EventLog();
    log.record({ kind: 'pushed', image: 'app:1' });
    log.record({ kind: 'pushed', image: 'app:2' });
    expect(log.since(0).map((e) => e.image)).toEqual(['app:1', 'app:2']);
    expect(log.since(1).map((e) => e.image)).toEqual(['app:2']);
    expect(log.since(2)).toEqual([]);
    // The page last saw event 150 of the daemon before this one.
    expect(log.since(150).map((e) => e.image)).toEqual(['app:1', 'app:2']);
  });
});
