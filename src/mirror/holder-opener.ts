// Opening a blob on one of its holders: nearest first, hedged like Spegel (when the one asked is slower
// than nearly all answers so far, the next is asked too and the first good answer wins), and
// redirected by busy holders to the peers they are feeding.
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { PeerClient, PeerResponse } from './peer-client.js';
import type { DataPlane, HolderDirectory } from '../dht/membership.js';
import { BLOB_PATH, PATIENT_HEADER, TRY_HEADER, WHOLE_HEADER } from './peer-protocol.js';
import { hedges } from './metrics.js';

/** Hedge delay until enough answer times are known, and its floor. */
const HEDGE_DEFAULT_MS = 300;
const HEDGE_MIN_MS = 20;

export interface HolderOpenerOptions {
  peers: PeerClient;
  log: Logger;
  /** A holder that has not answered within this long is given up. */
  stallTimeoutMs: number;
  /** This node's peer id goes with patient requests; busy holders name members to ask instead. */
  members: Pick<HolderDirectory, 'self' | 'dataPlaneOf'>;
}

export interface Opened {
  peer: DataPlane;
  body: Readable;
  /** Size of the whole blob, as the peer states it (the digest check is what makes it trustworthy). */
  total: number;
  abort(): void;
}

export interface OpenOptions {
  patient: boolean;
  end?: number;
  answerWithinMs?: number;
  whole?: boolean;
}

export class HolderOpener {
  /** How long recent holders took to answer (ms), for the hedge delay. */
  readonly #answerTimes: number[] = [];

  constructor(private readonly opts: HolderOpenerOptions) {}

  /**
   * Asks holders (taken from `untried`, nearest first) for the blob from `offset` (to `end`, inclusive, when given). When the one asked
   * has not answered within the hedge delay, the next is asked too; the first good answer wins and
   * the others are cancelled. Undefined when every holder failed. A holder is given up when it has not
   * answered within `answerWithinMs` (default: the stall timeout). `whole`: only from a holder of the whole blob.
   */
  open(digest: string, untried: DataPlane[], offset: number, opts: OpenOptions): Promise<Opened | undefined> {
    const { patient, end, answerWithinMs = this.opts.stallTimeoutMs, whole } = opts;
    const path = `${BLOB_PATH}${digest}`;
    const headers = { ...(patient ? { [PATIENT_HEADER]: this.opts.members.self } : {}), ...(whole ? { [WHOLE_HEADER]: '1' } : {}) };
    const asked = new Set<string>();
    return new Promise((resolve) => {
      const controllers: AbortController[] = [];
      let pending = 0;
      let won = false;
      let hedge: NodeJS.Timeout | undefined;
      const ask = () => {
        clearTimeout(hedge);
        const peer = untried.shift();
        if (!peer) {
          if (pending === 0 && !won) resolve(undefined);
          return;
        }
        pending++;
        const ctl = new AbortController();
        controllers.push(ctl);
        asked.add(peer.id);
        const started = performance.now();
        const noAnswer = setTimeout(() => ctl.abort(new Error('no answer')), answerWithinMs);
        // A patient fetch waits for the holder it was sent to (it may wait for its own copy to begin).
        if (!patient) hedge = setTimeout(() => (untried.length > 0 && hedges.inc(), ask()), this.#hedgeDelayMs());
        this.opts.peers.request(peer, path, { from: offset, to: end, headers, signal: ctl.signal })
          .then((res) => {
            clearTimeout(noAnswer);
            const total = totalSize(res);
            if (res.status === 503) this.#redirect(res, untried, asked);
            if (res.status !== (offset || end !== undefined ? 206 : 200) || total === undefined) {
              res.body.destroy();
              throw new Error(`answered ${res.status}${total === undefined ? ' without a size' : ''}`);
            }
            if (won) return void res.body.destroy();
            won = true;
            clearTimeout(hedge);
            this.#answerTimes.push(performance.now() - started);
            if (this.#answerTimes.length > 100) this.#answerTimes.shift();
            for (const other of controllers) if (other !== ctl) other.abort(new Error('another holder answered first'));
            resolve({ peer, body: res.body, total, abort: () => ctl.abort(new Error('peer stalled')) });
          })
          .catch((err: Error) => {
            clearTimeout(noAnswer);
            pending--;
            if (won) return;
            this.opts.log.warn({ digest, peer: peer.id, offset, err: err.message }, 'peer did not serve; asking the next holder');
            ask();
          });
      };
      ask();
    });
  }

  /** A busy holder names the peers it is sending the blob to: they are asked next, before everyone else. */
  #redirect(res: PeerResponse, untried: DataPlane[], asked: Set<string>): void {
    const ids = String(res.headers[TRY_HEADER] ?? '').split(',').filter((id) => id && !asked.has(id) && id !== this.opts.members.self);
    const next = ids.map((id) => untried.find((p) => p.id === id) ?? this.opts.members.dataPlaneOf(id)).filter((p): p is DataPlane => p !== undefined);
    for (const p of next.reverse()) {
      const at = untried.indexOf(p);
      if (at >= 0) untried.splice(at, 1);
      untried.unshift(p);
    }
  }

  /** Like Spegel: ask the next holder once the first is slower than nearly all answers seen so far. */
  #hedgeDelayMs(): number {
    if (this.#answerTimes.length < 10) return HEDGE_DEFAULT_MS;
    const sorted = [...this.#answerTimes].sort((a, b) => a - b);
    return Math.max(HEDGE_MIN_MS, sorted[Math.floor(sorted.length * 0.95)]);
  }
}

/** The whole blob's size from a peer's answer: Content-Range's total for a range, else Content-Length. */
function totalSize(res: PeerResponse): number | undefined {
  const total = Number(/\/(\d+)$/.exec(res.headers['content-range'] ?? '')?.[1] ?? res.headers['content-length'] ?? NaN);
  return Number.isSafeInteger(total) ? total : undefined;
}
