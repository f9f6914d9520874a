// What this host lacks, fetched from the peers that hold it: nearest first, verified against
// the digest before anything is kept, continuing on another holder from the same byte when a
// transfer breaks. Concurrent requests for one blob share one transfer.
import { Readable } from 'node:stream';
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
}

const MAX_MANIFEST_BYTES = 4 << 20;

export class Mirror implements MirrorSource {
  readonly #inflight = new Map<string, Promise<boolean>>();
  /** Peers that sent wrong bytes, by id: they go last from then on. */
  readonly #strikes = new Map<string, number>();

  constructor(private readonly opts: MirrorOptions) {}

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

  async #fetch(digest: string): Promise<boolean> {
    let candidates = await this.#holders(digest);
    while (candidates.length > 0) {
      const upload = await this.opts.store.beginUpload();
      const used = new Set<string>();
      try {
        await upload.append(this.#bytes(digest, candidates, used));
        await upload.commit({ digest });
        this.opts.log.info({ digest, bytes: upload.offset, from: [...used] }, 'fetched from the mesh');
        return true;
      } catch (err) {
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
  async *#bytes(digest: string, candidates: PeerEndpoint[], used: Set<string>): AsyncIterable<Uint8Array> {
    let offset = 0;
    for (const peer of candidates) {
      const stall = new AbortController();
      let timer = setTimeout(() => stall.abort(new Error('peer stalled')), this.opts.stallTimeoutMs);
      try {
        const res = await this.#get(peer, `/peer/v1/blobs/${digest}`, { range: offset, signal: stall.signal });
        if (res.status !== (offset ? 206 : 200) || !res.body) {
          await res.body?.cancel();
          throw new Error(`answered ${res.status}`);
        }
        used.add(peer.id);
        this.opts.log.info({ digest, peer: peer.id, offset }, 'peer transfer started');
        for await (const chunk of Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>)) {
          clearTimeout(timer);
          timer = setTimeout(() => stall.abort(new Error('peer stalled')), this.opts.stallTimeoutMs);
          offset += chunk.length;
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
}
