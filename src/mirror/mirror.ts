// What this host lacks, fetched from the peers that hold it: nearest first, hedged, verified against
// the digest before anything is kept, continuing on another holder from the same byte when a
// transfer breaks. The first client reads the bytes as they arrive; concurrent requests for the
// blob share the one transfer and are served from the store once it is complete.
import { PassThrough, Readable } from 'node:stream';
import type { Logger } from 'pino';
import { DigestMismatchError, isDigest, type Descriptor, type Store } from '../containerd/store.js';
import type { MirrorSource } from '../registry/context.js';
import { AUTH_HEADER, proof } from './peer-auth.js';

export interface PeerEndpoint {
  id: string;
  /** Base URL of the peer's data plane. */
  url: string;
  rttMs?: number;
}

export interface MirrorOptions {
  store: Store;
  /** Holders of a key other than this node, as data plane endpoints. */
  findPeers(key: string, signal: AbortSignal): Promise<PeerEndpoint[]>;
  key: Buffer;
  log: Logger;
  /** How long finding holders may take; nobody found by then means "not in the mesh". */
  lookupTimeoutMs: number;
  /** A peer that sends no byte for this long is given up for the next one. */
  stallTimeoutMs: number;
  /** Whether image names are looked up in the mesh (else only digests). */
  resolveTags: boolean;
}

const MAX_MANIFEST_BYTES = 4 << 20;
/** Hedge delay until enough answer times are known, and its floor. */
const HEDGE_DEFAULT_MS = 300;
const HEDGE_MIN_MS = 20;

interface Opened {
  peer: PeerEndpoint;
  body: Readable;
  /** Size of the whole blob, as the peer states it (the digest check is what makes it trustworthy). */
  total: number | undefined;
  abort(): void;
}

/** A blob arriving from a peer, as one client reads it. */
export interface LiveBlob {
  size: number;
  stream: Readable;
}

interface Live {
  client: HeldBackStream;
  sized(size: number | undefined): void;
}

/**
 * What one client reads while a blob arrives: every chunk, except that the last is held back until
 * the digest is verified. Wrong bytes therefore never complete a response: it is cut short instead.
 */
class HeldBackStream {
  readonly stream = new PassThrough();
  #held?: Uint8Array;
  #gone = false;

  constructor() {
    this.stream.once('close', () => (this.#gone = true));
  }

  /** Writes the previous chunk and holds this one; waits while the client is slower than the peer. */
  async push(chunk: Uint8Array): Promise<void> {
    const previous = this.#held;
    this.#held = chunk;
    if (previous === undefined || this.#gone || this.stream.write(previous)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.stream.off('drain', done).off('close', done);
        resolve();
      };
      this.stream.on('drain', done).on('close', done);
    });
  }

  finish(verified: boolean): void {
    if (this.#gone) return;
    if (verified) this.stream.end(this.#held);
    else this.stream.destroy(new Error('the blob from the mesh did not match its digest'));
  }
}

export class Mirror implements MirrorSource {
  readonly #inflight = new Map<string, Promise<boolean>>();
  /** Peers that sent wrong bytes, by id: they go last from then on. */
  readonly #strikes = new Map<string, number>();
  /** How long recent peers took to answer (ms), for the hedge delay. */
  readonly #answerTimes: number[] = [];

  constructor(private readonly opts: MirrorOptions) {}

  async streamBlob(digest: string): Promise<LiveBlob | 'busy' | undefined> {
    if (!isDigest(digest)) return undefined;
    if (this.#inflight.has(digest)) return 'busy';
    let sized!: (size: number | undefined) => void;
    const size = new Promise<number | undefined>((resolve) => (sized = resolve));
    const client = new HeldBackStream();
    const fetching = this.#fetch(digest, { client, sized }).finally(() => {
      this.#inflight.delete(digest);
      sized(undefined);
    });
    this.#inflight.set(digest, fetching);
    const total = await size;
    if (total === undefined) return (await fetching) ? 'busy' : undefined;
    return { size: total, stream: client.stream };
  }

  fetchBlob(digest: string): Promise<boolean> {
    if (!isDigest(digest)) return Promise.resolve(false);
    let pending = this.#inflight.get(digest);
    if (!pending) {
      pending = this.#fetch(digest).finally(() => this.#inflight.delete(digest));
      this.#inflight.set(digest, pending);
    }
    return pending;
  }

  async resolveTag(image: string): Promise<Descriptor | undefined> {
    if (!this.opts.resolveTags) return undefined;
    for (const peer of await this.#holders(image)) {
      try {
        const res = await this.#get(peer, `/peer/v1/images?name=${encodeURIComponent(image)}`);
        if (!res.ok) continue;
        const target = (await res.json()) as Descriptor;
        if (!isDigest(target.digest) || target.size > MAX_MANIFEST_BYTES) continue;
        if (await this.fetchBlob(target.digest)) return { mediaType: target.mediaType, digest: target.digest, size: target.size };
      } catch (err) {
        this.opts.log.warn({ peer: peer.id, image, err: (err as Error).message }, 'peer could not resolve tag');
      }
    }
    return undefined;
  }

  async #holders(key: string): Promise<PeerEndpoint[]> {
    const peers = await this.opts.findPeers(key, AbortSignal.timeout(this.opts.lookupTimeoutMs));
    const strikes = (p: PeerEndpoint) => this.#strikes.get(p.id) ?? 0;
    return peers.sort((a, b) => strikes(a) - strikes(b) || (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity));
  }

  #get(peer: PeerEndpoint, path: string, init: { range?: number; signal?: AbortSignal } = {}): Promise<Response> {
    const headers: Record<string, string> = { [AUTH_HEADER]: proof(this.opts.key, 'GET', path) };
    if (init.range) headers.range = `bytes=${init.range}-`;
    return fetch(`${peer.url}${path}`, { headers, signal: init.signal ?? AbortSignal.timeout(this.opts.stallTimeoutMs) });
  }

  /** Fetches into the store; `live`, when given, gets the first attempt's bytes as they arrive. */
  async #fetch(digest: string, live?: Live): Promise<boolean> {
    let candidates = await this.#holders(digest);
    while (candidates.length > 0) {
      const upload = await this.opts.store.beginUpload();
      const used = new Set<string>();
      try {
        await upload.append(this.#bytes(digest, candidates, used, live));
        await upload.commit({ digest });
        live?.client.finish(true);
        this.opts.log.info({ digest, bytes: upload.offset, from: [...used] }, 'fetched from the mesh');
        return true;
      } catch (err) {
        // The live client's response is cut short: its last bytes were held back, so it never completes.
        live?.client.finish(false);
        live = undefined;
        await upload.abort();
        if (!(err instanceof DigestMismatchError)) {
          this.opts.log.warn({ digest, err: (err as Error).message }, 'no peer could serve the blob');
          return false;
        }
        // Wrong bytes: whoever sent them is not asked again for this blob, and goes last for others.
        for (const id of used) this.#strikes.set(id, (this.#strikes.get(id) ?? 0) + 1);
        this.opts.log.warn({ digest, peers: [...used], actual: err.actual }, 'peer sent bytes that do not match the digest');
        candidates = candidates.filter((c) => !used.has(c.id));
      }
    }
    return false;
  }

  /** The blob's bytes from the first holder that answers, continuing on the next from the same offset. */
  async *#bytes(digest: string, candidates: PeerEndpoint[], used: Set<string>, live?: Live): AsyncIterable<Uint8Array> {
    let offset = 0;
    const untried = [...candidates];
    for (let opened = await this.#open(digest, untried, offset); opened; opened = await this.#open(digest, untried, offset)) {
      const { peer, body, abort } = opened;
      if (offset === 0) live?.sized(opened.total);
      used.add(peer.id);
      this.opts.log.info({ digest, peer: peer.id, offset }, 'peer transfer started');
      let timer = setTimeout(abort, this.opts.stallTimeoutMs);
      try {
        for await (const chunk of body) {
          clearTimeout(timer);
          timer = setTimeout(abort, this.opts.stallTimeoutMs);
          offset += chunk.length;
          await live?.client.push(chunk);
          yield chunk;
        }
        return;
      } catch (err) {
        this.opts.log.warn({ digest, peer: peer.id, offset, err: (err as Error).message }, 'peer transfer failed; trying the next holder');
      } finally {
        clearTimeout(timer);
      }
    }
    throw new Error(`no holder of ${digest} could send it (${candidates.length} tried)`);
  }

  /**
   * Asks holders (taken from `untried`, nearest first) for the blob from `offset`. When the one asked
   * has not answered within the hedge delay, the next is asked too; the first good answer wins and
   * the others are cancelled. Undefined when every holder failed.
   */
  #open(digest: string, untried: PeerEndpoint[], offset: number): Promise<Opened | undefined> {
    const path = `/peer/v1/blobs/${digest}`;
    return new Promise((resolve) => {
      const asked: AbortController[] = [];
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
        asked.push(ctl);
        const started = performance.now();
        const noAnswer = setTimeout(() => ctl.abort(new Error('no answer')), this.opts.stallTimeoutMs);
        hedge = setTimeout(ask, this.#hedgeDelayMs());
        this.#get(peer, path, { range: offset, signal: ctl.signal })
          .then(async (res) => {
            clearTimeout(noAnswer);
            if (res.status !== (offset ? 206 : 200) || !res.body) {
              await res.body?.cancel();
              throw new Error(`answered ${res.status}`);
            }
            if (won) return void (await res.body.cancel());
            won = true;
            clearTimeout(hedge);
            this.#answerTimes.push(performance.now() - started);
            if (this.#answerTimes.length > 100) this.#answerTimes.shift();
            for (const other of asked) if (other !== ctl) other.abort(new Error('another holder answered first'));
            const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
            const total = Number(/\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1] ?? res.headers.get('content-length') ?? NaN);
            resolve({ peer, body, total: Number.isSafeInteger(total) ? total : undefined, abort: () => ctl.abort(new Error('peer stalled')) });
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

  /** Like Spegel: ask the next holder once the first is slower than nearly all answers seen so far. */
  #hedgeDelayMs(): number {
    if (this.#answerTimes.length < 10) return HEDGE_DEFAULT_MS;
    const sorted = [...this.#answerTimes].sort((a, b) => a - b);
    return Math.max(HEDGE_MIN_MS, sorted[Math.floor(sorted.length * 0.95)]);
  }
}
