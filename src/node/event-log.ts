// What happened lately on this node and in the fleet (pushes heard in gossip, replications, evictions), for
// the status page: a bounded ring, read by sequence number so a poller sees each event once.
import type { FleetEvent } from '../api/admin-types.js';

const KEPT = 200;

export class EventLog {
  #events: FleetEvent[] = [];
  /** Numbered from this boot's clock, so that a page polling across a restart asks for numbers the new daemon passed. */
  #seq = Date.now();

  record(event: Omit<FleetEvent, 'seq' | 'time'>): void {
    this.#events.push({ seq: ++this.#seq, time: new Date().toISOString(), ...event });
    if (this.#events.length > KEPT) this.#events.shift();
  }

  /**
   * Events after `seq`, oldest first. A `seq` beyond the last one comes from a page that polled this node before
   * it restarted with its clock set back: it gets everything kept.
   */
  since(seq: number): FleetEvent[] {
    const after = seq > this.#seq ? 0 : seq;
    return this.#events.filter((e) => e.seq > after);
  }
}
