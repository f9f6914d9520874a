// What members tell each other about membership (roster.ts): an announcement (a member's NodeInfo and
// addresses) or a leave on the members topic, and member lists asked for by joining nodes; and their checks.
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { parseNodeInfo } from './peer-directory.js';
import type { NodeInfo } from './router.js';

export const MEMBERS_TOPIC = 'layermesh/members/1';
export const MEMBERS_PROTOCOL = '/layermesh/members/1.0.0';
const MAX_ANNOUNCEMENT_BYTES = 8 << 10;
export const MAX_ADDRS = 16;

/** What a member announces about itself, and what a member list holds per member. */
export interface Announcement {
  info: NodeInfo;
  addrs: string[];
}

/** What a member says when it stops. */
export const LEAVE = { leaving: true } as const;

/** One member of a list sent to a joining node: how long ago its sender last heard of it. */
export interface Listed extends Announcement {
  id: string;
  ageMs: number;
}

export function parseMessage(data: Uint8Array): Announcement | typeof LEAVE | undefined {
  if (data.byteLength > MAX_ANNOUNCEMENT_BYTES) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
  } catch {
    return undefined;
  }
  return (value as typeof LEAVE | null)?.leaving === true ? LEAVE : announcementOf(value);
}

function announcementOf(value: unknown): Announcement | undefined {
  const v = value as Partial<Announcement> | null;
  if (!Array.isArray(v?.addrs) || v.addrs.length > MAX_ADDRS || !v.addrs.every((a) => typeof a === 'string' && a.length <= 512)) return undefined;
  try {
    return { info: parseNodeInfo(v.info), addrs: v.addrs.filter(isMultiaddr) };
  } catch {
    return undefined;
  }
}

/** Addresses this node cannot read (a transport it does not know, or not one at all) are left out: dialing them would throw. */
function isMultiaddr(text: string): boolean {
  try {
    multiaddr(text);
    return true;
  } catch {
    return false;
  }
}

export function parseListed(value: unknown): Listed | undefined {
  const v = value as Partial<Listed> | null;
  if (typeof v?.id !== 'string' || !Number.isSafeInteger(v.ageMs) || v.ageMs! < 0) return undefined;
  try {
    peerIdFromString(v.id);
  } catch {
    return undefined;
  }
  const announcement = announcementOf(v);
  return announcement && { id: v.id, ageMs: v.ageMs!, ...announcement };
}
