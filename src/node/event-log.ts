// What happened lately on this node and in the fleet (pushes heard in gossip, replications, evictions), for
// the status page: a bounded ring, read by sequence number so a poller sees each event once.
import type { FleetEvent } from '../api/admin-types.js';

const KEPT = 200;

export class EventLog {
  #events: FleetEvent[] = [];
  #seq = 0;

  record(event: Omit<FleetEvent, 'seq' | 'time'>): void {
    this.#events.push({ seq: ++this.#seq, time: new Date().toISOString(), ...event });
    if (this.#events.length > KEPT) this.#events.shift();
  }

  /** Events after `seq`, oldest first. */
  since(seq: number): FleetEvent[] {
    return this.#events.filter((e) => e.seq > seq);
  }
}
