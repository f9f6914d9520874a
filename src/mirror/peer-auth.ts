// Membership proof for the peer data plane: HMAC-SHA256, with a key derived from the fleet's swarm key,
// over the request (method, path, a hash of its body), the node it is meant for, the time and a nonce.
// Only members hold the key, so only members can read. A captured request can be replayed neither to
// the node it was sent to (the nonce is remembered while the proof is fresh) nor to another member (the
// target differs), nor with another body. A mesh without a swarm key is open to anyone anyway.
import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

export const AUTH_HEADER = 'x-layermesh-auth';
/** Clocks of a fleet may differ this much; a nonce is remembered this long on each side of now. */
const MAX_SKEW_MS = 60_000;
/** Proofs remembered at most: a member sending more within the window is refused until older ones expire. */
const MAX_REMEMBERED = 500_000;

export function peerKey(swarmKey: Uint8Array | undefined): Buffer {
  return Buffer.from(hkdfSync('sha256', swarmKey ?? new Uint8Array(), 'layermesh', 'peer data plane v1', 32));
}

/** What a proof is bound to. */
export interface SignedRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  /** Peer id of the node the request is for. */
  target: string;
  body?: Uint8Array | string;
}

function mac(key: Buffer, r: SignedRequest, method: string, ts: number, nonce: string): Buffer {
  const body = createHash('sha256').update(r.body ?? '').digest('hex');
  return createHmac('sha256', key).update(`${method}\n${r.path}\n${r.target}\n${ts}\n${nonce}\n${body}`).digest();
}

/** The header value proving membership for this request. */
export function proof(key: Buffer, request: SignedRequest, now = Date.now()): string {
  const nonce = randomBytes(16).toString('hex');
  return `${now}.${nonce}.${mac(key, request, request.method, now, nonce).toString('hex')}`;
}

/** Checks proofs for one node, remembering each one it accepted so that it is accepted once. */
export class ProofChecker {
  readonly #seen = new Set<string>();
  /** The nonces remembered, by the second their proof expires in: forgotten by second, whatever order they came in. */
  readonly #expiring = new Map<number, string[]>();

  constructor(private readonly key: Buffer, private readonly self: string, private readonly maxRemembered = MAX_REMEMBERED) {}

  verify(request: Omit<SignedRequest, 'target'>, header: string | undefined, now = Date.now()): boolean {
    const m = /^(\d{1,16})\.([0-9a-f]{32})\.([0-9a-f]{64})$/.exec(header ?? '');
    if (!m) return false;
    const [, stamp, nonce, hex] = m;
    const ts = Number(stamp);
    if (Math.abs(now - ts) > MAX_SKEW_MS) return false;
    // HEAD is answered by the GET handler: a proof made for either method is accepted for both.
    const signedFor = request.method === 'HEAD' ? ['HEAD', 'GET'] : [request.method];
    const given = Buffer.from(hex, 'hex');
    const signed = { ...request, target: this.self };
    if (!signedFor.some((method) => timingSafeEqual(given, mac(this.key, signed, method, ts, nonce)))) return false;
    this.#forget(now);
    if (this.#seen.has(nonce) || this.#seen.size >= this.maxRemembered) return false;
    this.#seen.add(nonce);
    const second = Math.ceil((ts + MAX_SKEW_MS) / 1000);
    const bucket = this.#expiring.get(second);
    if (bucket) bucket.push(nonce);
    else this.#expiring.set(second, [nonce]);
    return true;
  }

  /** Forgets the nonces of proofs that expired: a few hundred buckets at most (the skew window, both sides of now). */
  #forget(now: number): void {
    for (const [second, nonces] of this.#expiring) {
      if (second * 1000 >= now) continue;
      for (const nonce of nonces) this.#seen.delete(nonce);
      this.#expiring.delete(second);
    }
  }
}
