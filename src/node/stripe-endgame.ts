// When a taker's stripes of an image reach their endgame (replicator.ts, mirror/lanes.ts).
import type { Piece } from '../mirror/peer-protocol.js';

/**
 * Per stripe, a promise of this taker holding every other stripe of the pieces it takes (there being others):
 * that stripe's lanes are then in their endgame (mirror/lanes.ts); `filled(s)` counts a lane of stripe s as here.
 */
export function endgameOf(taking: Piece[][]): { ready: Promise<void>[]; filled(s: number): void } {
  const left = taking.map((pieces) => pieces.length);
  const resolvers: (() => void)[] = [];
  const ready = left.map(() => new Promise<void>((resolve) => resolvers.push(resolve)));
  const check = () => left.forEach((_, s) => left.length > 1 && left.every((n, t) => t === s || n === 0) && resolvers[s]());
  check();
  return { ready, filled: (s) => (left[s]--, check()) };
}
