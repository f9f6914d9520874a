// Membership proof for the peer data plane: HMAC-SHA256 over method, path and time, with a key
// derived from the fleet's swarm key. Only members hold the key, so only members can read.
// A mesh without a swarm key is open to anyone anyway; its key is derived from nothing.
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

export const AUTH_HEADER = 'x-layermesh-auth';
/** Clocks of a fleet may differ this much; a captured proof is replayable only this long, and only for its path. */
const MAX_SKEW_MS = 60_000;

export function peerKey(swarmKey: Uint8Array | undefined): Buffer {
  return Buffer.from(hkdfSync('sha256', swarmKey ?? new Uint8Array(), 'layermesh', 'peer data plane v1', 32));
}

function mac(key: Buffer, method: string, path: string, ts: number): Buffer {
  return createHmac('sha256', key).update(`${method}\n${path}\n${ts}`).digest();
}

/** The header value proving membership for this request. */
export function proof(key: Buffer, method: string, path: string, now = Date.now()): string {
  return `${now}.${mac(key, method, path, now).toString('hex')}`;
}

export function verifyProof(key: Buffer, method: string, path: string, header: string | undefined, now = Date.now()): boolean {
  const m = /^(\d{1,16})\.([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return false;
  const ts = Number(m[1]);
  if (Math.abs(now - ts) > MAX_SKEW_MS) return false;
  // HEAD is answered by the GET handler: a proof made for either method is accepted for both.
  const signedFor = method === 'HEAD' ? ['HEAD', 'GET'] : [method];
  const given = Buffer.from(m[2], 'hex');
  return signedFor.some((mth) => timingSafeEqual(given, mac(key, mth, path, ts)));
}
