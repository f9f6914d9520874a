// Which push of an image name is its truth. Every push of a name is stamped by the node pushed to with a
// clock (milliseconds, never behind the newest push of that name it knows) and its own peer id; the newest
// push (higher clock, then higher peer id) names the image on every node. A node's image record carries
// the stamp of the push it follows in its labels, so the stamp survives restarts with the record.

export interface TagPush {
  /** Hybrid logical clock: wall-clock milliseconds, or one past the newest push of the name known, if later. */
  clock: number;
  /** Peer id of the node pushed to: breaks ties between equal clocks. */
  node: string;
}

export const PUSH_CLOCK_LABEL = 'org.layermesh.push.clock';
export const PUSH_NODE_LABEL = 'org.layermesh.push.node';
/** On the record of a push to this node that carried its own replication policy: members that missed the push's gossip learn it from here. */
export const PUSH_REPLICATE_LABEL = 'org.layermesh.push.replicate';

/** Positive when `a` is newer than `b`; a name without a stamp (an image tagged outside the mesh) is older than any. */
export function comparePushes(a: TagPush | undefined, b: TagPush | undefined): number {
  if (!a || !b) return (a ? 1 : 0) - (b ? 1 : 0);
  if (a.clock !== b.clock) return a.clock - b.clock;
  return a.node === b.node ? 0 : a.node > b.node ? 1 : -1;
}

/** The clock of a new push of a name whose newest known push is `newest`: newer than it even if this host's clock is behind. */
export function nextClock(newest: TagPush | undefined, now = Date.now()): number {
  return Math.max(now, (newest?.clock ?? 0) + 1);
}

export function isTagPush(value: unknown): value is TagPush {
  const v = value as Partial<TagPush> | null;
  return typeof v === 'object' && v !== null && Number.isSafeInteger(v.clock) && v.clock! >= 0
    && typeof v.node === 'string' && v.node.length > 0 && v.node.length <= 128;
}

export function pushLabels(push: TagPush): Record<string, string> {
  return { [PUSH_CLOCK_LABEL]: String(push.clock), [PUSH_NODE_LABEL]: push.node };
}

/** The stamp an image record's labels carry, if any. */
export function pushOf(labels: Record<string, string>): TagPush | undefined {
  const clock = labels[PUSH_CLOCK_LABEL];
  const push = { clock: clock !== undefined && /^\d+$/.test(clock) ? Number(clock) : -1, node: labels[PUSH_NODE_LABEL] };
  return isTagPush(push) ? push : undefined;
}
