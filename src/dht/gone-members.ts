// Members a node dropped lately (roster.ts). A member list whose news of one is older than its drop does not
// bring it back. A member lost (its dials failed, as opposed to one that left or went silent) is dialed again,
// less and less often: two hosts that lost the path between them, each still connected to the rest, find each
// other only this way in a fleet within the connection cap, where nobody announces; an internet route between
// two regions can stay down for hours. A member that left or went silent is remembered for `expiryPeriods`.

/** A lost member is dialed again after 0, 1, 3, 7, 15 … periods since its drop, for this long. */
const REDIAL_FOR_MS = 24 * 3600_000;

interface Gone {
  at: number;
  /** A lost member's addresses, to dial it again. */
  addrs?: string[];
  dials: number;
}

export class GoneMembers {
  private readonly gone = new Map<string, Gone>();

  constructor(private readonly expiryPeriods: number) {}

  /** Records a drop; `addrs` for a member lost, to be dialed again. */
  add(id: string, addrs?: string[], now = Date.now()): void {
    this.gone.set(id, { at: now, addrs, dials: 0 });
  }

  /** The member is heard of again. */
  delete(id: string): void {
    this.gone.delete(id);
  }

  droppedAt(id: string): number | undefined {
    return this.gone.get(id)?.at;
  }

  /** Forgets what is past remembering, and returns the lost members due for a dial (once a period, at most). */
  sweep(period: number, now = Date.now()): Array<{ id: string; addrs: string[] }> {
    const due: Array<{ id: string; addrs: string[] }> = [];
    for (const [id, g] of this.gone) {
      const age = now - g.at;
      if (g.addrs === undefined ? age > this.expiryPeriods * period : age > REDIAL_FOR_MS) this.gone.delete(id);
      else if (g.addrs && age >= (2 ** g.dials - 1) * period) {
        g.dials++;
        due.push({ id, addrs: g.addrs });
      }
    }
    return due;
  }
}
