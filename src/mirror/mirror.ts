// What this host lacks, fetched from the peers that hold it: nearest first, hedged, verified against
// the digest before anything is kept, continuing on another holder from the same byte when a
// transfer breaks. Bytes land in a spool file that every reader (local clients, peers) reads as it
// grows; once verified, the blob goes into the store unless the local client has already put it there.
// With an upstream (`--upstream`), what no peer holds is pulled through from the image's own registry
// into the same spool: verified, shared and stored exactly like bytes from a peer.
import { finished } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { DigestMismatchError, type Store } from '../store/store.js';
import { isDigest, type Descriptor } from '../oci/digest.js';
import type { ReadThrough, RequestedIn } from '../store/read-through.js';
import { readBounded } from '../oci/limits.js';
import { parseImageName } from '../oci/names.js';
import { readSmallBlob } from '../oci/references.js';
import { mediaTypeOf } from '../oci/manifest.js';
import { BlobSequence, type BlobSource } from './blob-sequence.js';
import { HolderOpener } from './holder-opener.js';
import { untilStalled } from './until-stalled.js';
import { peerRequest, type PeerEndpoint } from './peer-client.js';
import { IMAGES_PATH } from './peer-protocol.js';
import type { Spool } from './spool.js';
import type { Spools } from './spools.js';
import { MAX_MANIFEST_BYTES } from '../oci/limits.js';

export interface MirrorOptions {
  store: Store;
  spools: Spools;
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
  /**
   * After a local client has read a blob, how long its containerd may take to show it (it commits
   * what it pulled) before this node stores its own copy. Default 1 s.
   */
  clientCommitGraceMs?: number;
  /** The data plane of a member known by peer id (holders named by a push's gossip or by a busy holder). */
  endpointOf?(peerId: string): PeerEndpoint | undefined;
  /** This node's peer id, sent with patient fetches so that busy holders can redirect others to it. */
  selfId?: string;
  /** Called when a blob starts arriving here (this node can serve it from now on); the result when it ends. */
  partialHolder?(digest: string): () => void;
  /** How long a patient fetch keeps looking for a holder with a free slot. Default 10 min. */
  patienceMs?: number;
  /** The last resort when no peer holds it (`--upstream`): the image's own registry. */
  upstream?: UpstreamSource;
}

/** What the mirror needs of an upstream registry (see upstream.ts). */
export interface UpstreamSource {
  resolveTag(repo: string, tag: string): Promise<Descriptor | undefined>;
  open(repo: string, digest: string, manifest: boolean): Promise<{ size?: number; body: AsyncIterable<Uint8Array> } | undefined>;
}

export interface FetchOptions {
  /** Peer ids known to hold the blob, asked besides those the DHT names. */
  from?: string[];
  /**
   * Replication, not a waiting client: holders may answer "busy" (they already serve this blob to
   * someone, see the peer data plane) and the fetch then waits for a free holder, partial copies
   * included, which turns a fan-out into a chain of streaming copies instead of a herd on one node.
   */
  patient?: boolean;
  /** The repository a client asked for it in: where the upstream is asked when no peer has it. */
  requestedIn?: RequestedIn;
  /** The blob's bytes as a holder already sends them (a replication sequence), tried before any other holder. */
  source?: BlobSource;
}

/** A blob on its way here, as its fetcher sees it. */
export interface Fetching {
  /**
   * True once the bytes are here and verified, while they may still be going into the store: a
   * replication pipeline moves on to its next blob without waiting for the store's commit.
   */
  verified: Promise<boolean>;
  /** True once the store holds the blob; false when no holder sent the right bytes. */
  stored: Promise<boolean>;
}


const COMMIT_POLL_MS = 25;
const DEFAULT_PATIENCE_MS = 10 * 60_000;

/** A blob arriving from a peer, as one client reads it. */
export interface LiveBlob {
  size: number;
  stream: Readable;
}

/** One blob on its way from the mesh into this node, shared by everyone who asks for it meanwhile. */
interface Transfer extends Fetching {
  options: FetchOptions;
  spool: Promise<Spool>;
  /** Local clients reading it; the store copy waits for them (they may store it themselves). */
  clients: Promise<unknown>[];
}

export class Mirror implements ReadThrough {
  readonly #transfers = new Map<string, Transfer>();
  /** Peers that sent wrong bytes, by id: they go last from then on. */
  readonly #strikes = new Map<string, number>();

  readonly #opener: HolderOpener;

  constructor(private readonly opts: MirrorOptions) {
    this.#opener = new HolderOpener(opts);
  }

  /** The blob's bytes as they arrive here (the last ones only once verified); undefined when nobody holds it. */
  async stream(digest: string, requestedIn?: RequestedIn): Promise<LiveBlob | undefined> {
    if (!isDigest(digest)) return undefined;
    const transfer = this.#transfer(digest, { requestedIn });
    const spool = await transfer.spool;
    const size = await spool.sized();
    if (size === undefined) return undefined;
    const stream = spool.reader();
    transfer.clients.push(finished(stream).catch(() => undefined));
    return { size, stream };
  }

  /** Fetches the blob into the store, or joins the transfer already under way (its options stay). */
  fetch(digest: string, options: FetchOptions = {}): Fetching {
    if (!isDigest(digest)) return { verified: Promise.resolve(false), stored: Promise.resolve(false) };
    const { verified, stored } = this.#transfer(digest, options);
    return { verified, stored };
  }

  /** `blobs` from one holder on one stream, in this order (see BlobSequence). */
  openSequence(peerId: string, blobs: Descriptor[]): Promise<BlobSequence> {
    const peer = this.opts.endpointOf?.(peerId);
    if (!peer) return Promise.reject(new Error(`no data plane known for ${peerId}`));
    return BlobSequence.open(peer, blobs, { key: this.opts.key, stallTimeoutMs: this.opts.stallTimeoutMs, selfId: this.opts.selfId });
  }

  /** Blobs arriving now, with how much of each is here: for progress. */
  arriving(): Map<string, number> {
    return new Map(this.opts.spools.list().map((s) => [s.digest, s.received]));
  }

  #transfer(digest: string, options: FetchOptions = {}): Transfer {
    let transfer = this.#transfers.get(digest);
    // Joining a transfer begun without a repository (replication) still lets it fall back to the upstream.
    if (transfer && options.requestedIn) transfer.options.requestedIn ??= options.requestedIn;
    if (!transfer) {
      options = { ...options };
      const spool = this.opts.spools.create(digest);
      const clients: Promise<unknown>[] = [];
      let verify!: (ok: boolean) => void;
      const verified = new Promise<boolean>((resolve) => (verify = resolve));
      const stored = spool
        .then((s) => this.#receiveAndStore(s, clients, options, () => verify(true)))
        .catch((err: Error) => {
          this.opts.log.error({ digest, err }, 'fetching from the mesh failed');
          return false;
        })
        .finally(() => this.#transfers.delete(digest));
      void stored.then(verify); // when it ends before verification (failed, or found in the store)
      transfer = { options, spool, verified, stored, clients };
      this.#transfers.set(digest, transfer);
    }
    return transfer;
  }

  async resolveTag(image: string): Promise<Descriptor | undefined> {
    return (await this.#resolveInMesh(image)) ?? (await this.#resolveUpstream(image));
  }

  /**
   * A tag upstream names a digest; the manifest is then fetched by digest and verified like any blob.
   * No image record is made: containerd records the image it pulled itself, and a record here would
   * pin the tag to this digest (the store is asked first) long after the upstream has moved it.
   */
  async #resolveUpstream(image: string): Promise<Descriptor | undefined> {
    const { upstream, store } = this.opts;
    const { repo, tag } = parseImageName(image);
    if (!upstream || !tag) return undefined;
    const target = await upstream.resolveTag(repo, tag);
    if (!target || target.size > MAX_MANIFEST_BYTES) return undefined;
    if (!(await this.fetch(target.digest, { requestedIn: { repo, manifest: true } }).stored)) return undefined;
    const body = await readSmallBlob(store, target.digest);
    return body && { mediaType: mediaTypeOf(body), digest: target.digest, size: body.length };
  }

  async #resolveInMesh(image: string): Promise<Descriptor | undefined> {
    if (!this.opts.resolveTags) return undefined;
    for (const peer of await this.#holders(image)) {
      try {
        const path = `${IMAGES_PATH}?name=${encodeURIComponent(image)}`;
        const res = await peerRequest(peer.url, path, this.opts.key, { signal: AbortSignal.timeout(this.opts.stallTimeoutMs) });
        const answer = await readBounded(res.body, 64 << 10);
        if (res.status !== 200) continue;
        const target = JSON.parse(answer.toString()) as Descriptor;
        if (!isDigest(target.digest) || target.size > MAX_MANIFEST_BYTES) continue;
        if (await this.fetch(target.digest).stored) return { mediaType: target.mediaType, digest: target.digest, size: target.size };
      } catch (err) {
        this.opts.log.warn({ peer: peer.id, image, err: (err as Error).message }, 'peer could not resolve tag');
      }
    }
    return undefined;
  }

  /**
   * Holders of a key: those named in `from` first, in that order, then what the DHT knows, nearest
   * first. Named holders are tried alone at first (`namedOnly`): a DHT walk is not worth the wait then.
   */
  async #holders(key: string, from: string[] = [], namedOnly = false): Promise<PeerEndpoint[]> {
    const peers = namedOnly && from.length > 0 ? [] : await this.opts.findPeers(key, AbortSignal.timeout(this.opts.lookupTimeoutMs));
    for (const id of from) {
      const known = peers.some((p) => p.id === id) ? undefined : this.opts.endpointOf?.(id);
      if (known) peers.push(known);
    }
    const strikes = (p: PeerEndpoint) => this.#strikes.get(p.id) ?? 0;
    const named = (p: PeerEndpoint) => (from.includes(p.id) ? from.indexOf(p.id) : from.length);
    return peers.sort((a, b) => strikes(a) - strikes(b) || named(a) - named(b) || (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity));
  }

  /** Receives the blob into its spool and then into the store; false when no holder sent the right bytes. */
  async #receiveAndStore(spool: Spool, clients: Promise<unknown>[], options: FetchOptions, verified: () => void): Promise<boolean> {
    const { digest } = spool;
    if (await this.opts.store.stat(digest)) {
      await this.opts.spools.remove(spool);
      return true; // arrived meanwhile (the transfer before just ended)
    }
    const released = this.opts.partialHolder?.(digest);
    // Replication wants a copy here in any case: it goes into the store as the bytes arrive, so that
    // the copy is done moments after the last byte instead of a whole second pass later.
    const early = options.patient ? this.#store(spool).then(() => true, (err: Error) => {
      this.opts.log.debug({ digest, err: err.message }, 'storing while arriving did not work out; storing from the spool');
      return false;
    }) : undefined;
    try {
      const received = (await this.#receive(spool, options)) || (await this.#pullThrough(spool, options.requestedIn));
      if (!received) return false;
      verified();
      if (!(await early)) await this.#keep(spool, clients);
      return true;
    } finally {
      await this.opts.spools.remove(spool);
      await early; // its reader fails with the spool: the store keeps nothing of a failed transfer
      released?.();
    }
  }

  async #receive(spool: Spool, options: FetchOptions): Promise<boolean> {
    const { digest } = spool;
    const giveUpAt = Date.now() + (options.patient ? this.opts.patienceMs ?? DEFAULT_PATIENCE_MS : 0);
    const liars = new Set<string>();
    if (options.source && (await this.#fromSource(spool, options.source, liars))) return true;
    for (let attempt = 0; ; attempt++) {
      const candidates = (await this.#holders(digest, options.from, attempt === 0)).filter((c) => !liars.has(c.id));
      if (candidates.length > 0) {
        const used = new Set<string>();
        try {
          await this.#fill(spool, this.#bytes(spool, candidates, used, options), used);
          return true;
        } catch (err) {
          if (err instanceof DigestMismatchError) {
            await this.#mismatched(spool, [...used], err, liars);
            continue;
          }
          this.opts.log.warn({ digest, err: (err as Error).message, patient: options.patient === true }, 'no peer could serve the blob');
        }
      }
      if (Date.now() >= giveUpAt) return false;
      // Holders were busy or not yet known: look again soon, at a moment that differs from node to node.
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 150));
    }
  }

  /** Reads the blob from a holder's sequence; false when it broke (what came is kept) or lied (nothing is). */
  async #fromSource(spool: Spool, source: BlobSource, liars: Set<string>): Promise<boolean> {
    spool.setSize(source.size);
    try {
      await this.#fill(spool, source.bytes, [source.peer]);
      return true;
    } catch (err) {
      if (err instanceof DigestMismatchError) await this.#mismatched(spool, [source.peer], err, liars);
      else this.opts.log.warn({ digest: spool.digest, peer: source.peer, offset: spool.received, err: (err as Error).message }, 'asking holders for the rest');
      return false;
    }
  }

  /** Appends the bytes to the spool and verifies them (DigestMismatchError when wrong). */
  async #fill(spool: Spool, bytes: AsyncIterable<Uint8Array>, from: Iterable<string>): Promise<void> {
    for await (const chunk of bytes) await spool.append(chunk);
    await spool.flush();
    spool.verify();
    this.opts.log.info({ digest: spool.digest, bytes: spool.written, from: [...from] }, 'fetched from the mesh');
  }

  /** Wrong bytes: whoever sent them is not asked again for this blob and goes last for others; the spool starts over. */
  async #mismatched(spool: Spool, peers: string[], err: DigestMismatchError, liars: Set<string>): Promise<void> {
    for (const id of peers) {
      this.#strikes.set(id, (this.#strikes.get(id) ?? 0) + 1);
      liars.add(id);
    }
    this.opts.log.warn({ digest: spool.digest, peers, actual: err.actual }, 'peer sent bytes that do not match the digest');
    await spool.restart();
  }

  /** Receives the blob from the upstream registry into the spool, verified; false when it cannot. */
  async #pullThrough(spool: Spool, requestedIn: RequestedIn | undefined): Promise<boolean> {
    const { upstream, log } = this.opts;
    if (!upstream || !requestedIn) return false;
    const { digest } = spool;
    // A peer transfer that broke part-way: the upstream sends the blob whole, from the start.
    if (spool.received > 0) await spool.restart();
    const opened = await upstream.open(requestedIn.repo, digest, requestedIn.manifest === true);
    if (!opened) return false;
    const limit = requestedIn.manifest ? MAX_MANIFEST_BYTES : Infinity;
    if (opened.size !== undefined) spool.setSize(opened.size);
    try {
      for await (const chunk of opened.body) {
        await spool.append(chunk);
        if (spool.received > Math.min(limit, opened.size ?? Infinity)) throw new Error('the upstream sent more bytes than it stated');
      }
      await spool.flush();
      spool.verify();
    } catch (err) {
      // Nothing is kept: the spool is removed, and its readers never see the last byte.
      const mismatch = err instanceof DigestMismatchError;
      log.warn({ digest, repo: requestedIn.repo, err: (err as Error).message, ...(mismatch && { actual: err.actual }) },
        mismatch ? 'the upstream registry sent bytes that do not match the digest' : 'pulling through from the upstream registry failed');
      return false;
    }
    log.info({ digest, repo: requestedIn.repo, bytes: spool.written }, 'pulled through from the upstream registry');
    return true;
  }

  /**
   * Puts the verified blob into the store. A local client that read it is usually this host's own
   * containerd, which stores what it pulled: a second copy from here would double the work, so
   * the store is given a moment to show the client's copy first.
   */
  async #keep(spool: Spool, clients: Promise<unknown>[]): Promise<void> {
    const { store } = this.opts;
    if (clients.length > 0) {
      await Promise.all(clients);
      const deadline = Date.now() + (this.opts.clientCommitGraceMs ?? 1000);
      while (Date.now() < deadline) {
        if (await store.stat(spool.digest)) return void this.opts.log.debug({ digest: spool.digest }, 'the local client stored the blob');
        await new Promise((r) => setTimeout(r, COMMIT_POLL_MS));
      }
    }
    if (await store.stat(spool.digest)) return;
    this.opts.log.debug({ digest: spool.digest }, 'storing the blob from its spool');
    await this.#store(spool);
  }

  /** Writes the spool into the store as it arrives; the commit verifies the digest again. */
  async #store(spool: Spool): Promise<void> {
    const upload = await this.opts.store.beginUpload();
    try {
      await upload.append(spool.reader());
      await upload.commit({ digest: spool.digest, size: spool.written });
    } catch (err) {
      await upload.abort();
      throw err;
    }
  }

  /** The blob's bytes from the first holder that answers, continuing on the next from the spool's end. */
  async *#bytes(spool: Spool, candidates: PeerEndpoint[], used: Set<string>, options: FetchOptions): AsyncIterable<Uint8Array> {
    const { digest } = spool;
    const untried = [...candidates];
    const open = () => this.#opener.open(digest, untried, spool.received, options.patient === true);
    for (let opened = await open(); opened; opened = await open()) {
      const { peer, body, abort } = opened;
      spool.setSize(opened.total);
      used.add(peer.id);
      this.opts.log.info({ digest, peer: peer.id, offset: spool.received }, 'peer transfer started');
      try {
        yield* untilStalled(body, this.opts.stallTimeoutMs, abort);
        return;
      } catch (err) {
        this.opts.log.warn({ digest, peer: peer.id, offset: spool.received, err: (err as Error).message }, 'peer transfer failed; trying the next holder');
      }
    }
    throw new Error(`no holder of ${digest} could send it (${candidates.length} tried)`);
  }
}
