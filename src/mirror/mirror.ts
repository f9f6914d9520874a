// What this host lacks, fetched from the peers that hold it: nearest first, hedged, verified against
// the digest before anything is kept, continuing on another holder from the same byte when a
// transfer breaks. Bytes land in a spool file that every reader (local clients, peers) reads as it
// grows; once verified, the blob goes into the store unless the local client has already put it there.
// With an upstream (`--upstream`), what no peer holds is pulled through from the image's own registry
// into the same spool: verified, shared and stored exactly like bytes from a peer.
import { finished } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { DigestMismatchError, StoreBusyError, StoreFullError } from '../store/store.js';
import { isDigest, type Descriptor } from '../oci/digest.js';
import type { Piece, SequenceLevel } from './peer-protocol.js';
import type { RequestedIn } from '../store/store.js';
import { BlobSequence } from './blob-sequence.js';
import { fillLanes, type Only, type RangeSource } from './lanes.js';
import { HolderOpener } from './holder-opener.js';
import { untilStalled } from './until-stalled.js';
import type { DataPlane } from '../dht/membership.js';
import { Holders } from './holders.js';
import { pullThrough, type UpstreamSource } from './pull-through.js';
import { failovers, fetchedBytes, mirrorRequests, peersStruck, type MirrorOutcome } from './metrics.js';
import { keepSpool, storeSpool } from './store-writer.js';
import { TagResolver } from './tag-resolver.js';
import { limitedUpstream, type Traffic } from './bandwidth.js';
import { SpoolWriteError, type Spool } from './spool.js';
import { LogRateLimiter } from '../util/log-rate-limiter.js';
import { askedIn, joinOptions, type FetchOptions, type Fetching, type MirrorOptions } from './mirror-options.js';

const DEFAULT_PATIENCE_MS = 10 * 60_000;
/** Transfers under way past which a client's request starts no other (see stream()); replication's are not refused. */
export const MAX_TRANSFERS = 256;

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

export class Mirror {
  readonly #transfers = new Map<string, Transfer>();
  readonly #holders: Holders;
  readonly #tags: TagResolver;

  readonly #opener: HolderOpener;
  readonly #upstream?: UpstreamSource;
  /** Pull-throughs that failed: any local reader can make them fail, each told a line a minute per registry. */
  readonly #upstreamFailures = new LogRateLimiter();
  readonly #spoolFailures = new LogRateLimiter();

  constructor(private readonly opts: MirrorOptions) {
    this.#opener = new HolderOpener(opts);
    this.#upstream = opts.upstream && opts.bandwidth ? limitedUpstream(opts.upstream, opts.bandwidth) : opts.upstream;
    this.#holders = new Holders(opts);
    this.#tags = new TagResolver({
      ...opts,
      holders: this.#holders,
      fetch: (digest, requestedIn) => this.fetch(digest, { requestedIn }).stored,
    });
  }

  /**
   * The blob's bytes as they arrive here (the last ones only once verified); undefined when nobody holds it. A client
   * starts no new transfer while MAX_TRANSFERS are under way: each holds a spool file and asks the mesh (and the
   * upstream), and any local reader may ask for any digest.
   */
  async stream(digest: string, requestedIn?: RequestedIn): Promise<LiveBlob | undefined> {
    if (!isDigest(digest)) return undefined;
    if (!this.#transfers.has(digest) && this.#transfers.size >= MAX_TRANSFERS) {
      throw new StoreBusyError(`${this.#transfers.size} blobs are being fetched from the mesh already; try again`);
    }
    const joining = this.#transfers.has(digest);
    const transfer = this.#transfer(digest, { requestedIn });
    const spool = await transfer.spool;
    const size = await spool.sized();
    if (size === undefined) return undefined;
    // Said before the answer begins, the client asks its next host; a spool that fills the disk mid-way cuts it off.
    if (!joining && !(await this.opts.spools.fits(spool, size))) {
      throw new StoreFullError(`no room for the ${size} bytes of ${digest} in this node's spool directory`);
    }
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

  /** The manifest an image name names, from the peers that announce it or the upstream, fetched into the store. */
  resolveTag(image: string): Promise<Descriptor | undefined> {
    return this.#tags.resolve(image);
  }

  /** `pieces` of blobs from one holder on one stream, in this order (see BlobSequence); `level`: see SEQUENCE_PATH. */
  openSequence(peerId: string, pieces: Piece[], level?: SequenceLevel): Promise<BlobSequence> {
    const peer = this.opts.members.dataPlaneOf(peerId);
    if (!peer) return Promise.reject(new Error(`no data plane known for ${peerId}`));
    return BlobSequence.open(peer, pieces, { peers: this.opts.peers, stallTimeoutMs: this.opts.stallTimeoutMs, selfId: this.opts.members.self, level });
  }

  /** Blobs arriving now, with how much of each is here: for progress. */
  arriving(): Map<string, number> {
    return new Map(this.opts.spools.list().map((s) => [s.digest, s.received]));
  }

  #transfer(digest: string, options: FetchOptions = {}): Transfer {
    let transfer = this.#transfers.get(digest);
    if (transfer) joinOptions(transfer.options, options);
    else {
      options = { ...options };
      const spool = this.opts.spools.create(digest);
      const clients: Promise<unknown>[] = [];
      let verify!: (ok: boolean) => void;
      const verified = new Promise<boolean>((resolve) => (verify = resolve));
      // One outcome per transfer a client asked for: where it was found, or `failed` when it ended before that was known.
      let counted = false;
      const count = (outcome: MirrorOutcome) => {
        if (!options.requestedIn || counted) return;
        counted = true;
        mirrorRequests.inc({ outcome });
      };
      const stored = spool
        .then((s) => this.#receiveAndStore(s, clients, options, () => verify(true), count))
        .catch((err: Error) => {
          count('failed');
          // A blob that does not fit is refused at each request any local reader makes: a line a minute of those.
          const admitted = err instanceof SpoolWriteError ? this.#spoolFailures.admit('spool') : { suppressed: 0, suppressedOthers: 0 };
          if (admitted) this.opts.log.error({ digest, err, suppressed: admitted.suppressed + admitted.suppressedOthers }, 'fetching from the mesh failed');
          return false;
        })
        .finally(() => this.#transfers.delete(digest));
      void stored.then(verify); // when it ends before verification (failed, or found in the store)
      transfer = { options, spool, verified, stored, clients };
      this.#transfers.set(digest, transfer);
    }
    return transfer;
  }

  /** Receives the blob into its spool and then into the store; false when no holder sent the right bytes. */
  async #receiveAndStore(spool: Spool, clients: Promise<unknown>[], options: FetchOptions, verified: () => void, count: (outcome: MirrorOutcome) => void): Promise<boolean> {
    const { digest } = spool;
    let released: (() => void) | undefined;
    let early: Promise<boolean> | undefined;
    // Every way out removes the spool: one left, the digest's transfer would stay under way and every later fetch fail.
    try {
      if (await this.opts.store.stat(digest)) return true; // arrived meanwhile (the transfer before just ended)
      released = this.opts.partialHolder?.(digest);
      // Replication wants a copy here in any case: it goes into the store as the bytes arrive, so that
      // the copy is done moments after the last byte instead of a whole second pass later.
      early = options.patient ? storeSpool(this.opts.store, spool).then(() => true, (err: Error) => {
        this.opts.log.debug({ digest, err: err.message }, 'storing while arriving did not work out; storing from the spool');
        return false;
      }) : undefined;
      const fromPeer = await this.#receive(spool, options);
      // Asked as clients join: one that joins while the first repositories are asked is asked too.
      const received = fromPeer || (await pullThrough(spool, this.#upstream, () => askedIn(options), {
        log: this.opts.log, failures: this.#upstreamFailures, room: (size) => this.#room(spool, size),
      }));
      count(fromPeer ? 'peer' : received ? 'upstream' : 'not_found');
      if (!received) return false;
      if (!fromPeer) fetchedBytes.inc({ source: 'upstream' }, spool.written);
      verified();
      if (!(await early)) await keepSpool(this.opts.store, spool, clients, this.opts.clientCommitGraceMs ?? 1000, this.opts.log);
      return true;
    } finally {
      await this.opts.spools.remove(spool);
      await early; // its reader fails with the spool: the store keeps nothing of a failed transfer
      released?.();
    }
  }

  async #receive(spool: Spool, options: FetchOptions): Promise<boolean> {
    const { digest } = spool;
    const started = Date.now();
    // Asked each round: a patient fetch (replication) may join this one meanwhile.
    const givenUp = () => Date.now() - started >= (options.patient ? this.opts.patienceMs ?? DEFAULT_PATIENCE_MS : 0);
    const liars = new Set<string>();
    if (options.lanes && (await this.#fromLanes(spool, options, liars))) return true;
    for (let attempt = 0; ; attempt++) {
      const candidates = (await this.#holders.of(digest, options.from, attempt === 0)).filter((c) => !liars.has(c.id));
      if (candidates.length > 0) {
        const used = new Set<string>();
        try {
          await this.#fill(spool, this.#bytes(digest, candidates, used, options, () => spool.received), used);
          return true;
        } catch (err) {
          if (err instanceof DigestMismatchError) {
            await this.#mismatched(spool, [...used], err, liars);
            continue;
          }
          if (err instanceof SpoolWriteError) throw err; // this node's own disk, not the peers
          this.opts.log.warn({ digest, err: (err as Error).message, patient: options.patient === true }, 'no peer could serve the blob');
        }
      }
      if (givenUp()) return false;
      // Holders were busy or not yet known: look again soon, at a moment that differs from node to node.
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 150));
    }
  }

  /** Takes the blob in the lanes given; false when they did not bring it all (the spool then starts over) or lied. */
  async #fromLanes(spool: Spool, options: FetchOptions, liars: Set<string>): Promise<boolean> {
    await this.#room(spool, options.lanes!.size);
    const used = new Set<string>();
    const rest: RangeSource = (at, end, used, first, only) => this.#rest(spool.digest, options, liars, at, end, used, first, only);
    try {
      await fillLanes(spool, options.lanes!, used, { limited: (bytes) => this.#limited('replication', bytes), rest, log: this.opts.log });
      this.#verify(spool, used);
      return true;
    } catch (err) {
      if (err instanceof DigestMismatchError) await this.#mismatched(spool, [...used], err, liars);
      else {
        this.opts.log.warn({ digest: spool.digest, from: [...used], err: (err as Error).message }, 'the stripes did not bring the whole blob; asking holders for all of it');
        await spool.restart();
      }
      return false;
    }
  }

  /** A range of the blob from its holders: what a feeder did not send. */
  async *#rest(digest: string, options: FetchOptions, liars: Set<string>, ...[at, end, used, first, only]: Parameters<RangeSource>): AsyncIterable<Uint8Array> {
    const named = only ? first : [...first, ...(options.from ?? [])];
    const candidates = (await this.#holders.of(digest, named, true)).filter((c) => !liars.has(c.id) && (!only || first.includes(c.id)));
    yield* this.#bytes(digest, candidates, used, options, at, end, only);
  }

  /** Throws SpoolWriteError (this node's disk: no other holder would do better) when `size` bytes would not fit in the spool. */
  async #room(spool: Spool, size: number): Promise<void> {
    const fits = await this.opts.spools.fits(spool, size).catch((err: Error) => Promise.reject(new SpoolWriteError(spool.digest, err)));
    if (!fits) throw new SpoolWriteError(spool.digest, new Error(`no room for its ${size} bytes`));
  }

  #limited(traffic: Traffic, bytes: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
    return this.opts.bandwidth ? this.opts.bandwidth.throttle(traffic, bytes) : bytes;
  }

  /** Appends the bytes to the spool and verifies them (DigestMismatchError when wrong). */
  async #fill(spool: Spool, bytes: AsyncIterable<Uint8Array>, from: Iterable<string>): Promise<void> {
    for await (const chunk of bytes) await spool.append(chunk);
    await spool.flush();
    this.#verify(spool, from);
  }

  #verify(spool: Spool, from: Iterable<string>): void {
    spool.verify();
    fetchedBytes.inc({ source: 'peer' }, spool.written);
    this.opts.log.info({ digest: spool.digest, bytes: spool.written, from: [...from] }, 'fetched from the mesh');
  }

  /** Wrong bytes: whoever sent them is not asked again for this blob and goes last for others; the spool starts over. */
  async #mismatched(spool: Spool, peers: string[], err: DigestMismatchError, liars: Set<string>): Promise<void> {
    peersStruck.inc(peers.length);
    for (const id of peers) {
      this.#holders.strike(id);
      liars.add(id);
    }
    this.opts.log.warn({ digest: spool.digest, peers, actual: err.actual }, 'peer sent bytes that do not match the digest');
    await spool.restart();
  }

  /** The blob's bytes from the first holder that answers, from `at()` (to `end` when given), continuing on the next from there. */
  async *#bytes(
    digest: string, candidates: DataPlane[], used: Set<string>, options: FetchOptions, at: () => number, end?: number, only?: Only,
  ): AsyncIterable<Uint8Array> {
    const untried = [...candidates];
    const open = () => this.#opener.open(digest, untried, at(), { patient: options.patient === true, end, ...only });
    for (let opened = await open(); opened; opened = await open()) {
      const { peer, body, abort } = opened;
      const spool = this.opts.spools.get(digest);
      spool?.setSize(opened.total);
      if (spool && at() === 0 && opened.total !== undefined) await this.#room(spool, opened.total).catch((err: Error) => (abort(), Promise.reject(err)));
      used.add(peer.id);
      this.opts.log.info({ digest, peer: peer.id, offset: at() }, 'peer transfer started');
      try {
        yield* this.#limited(options.patient ? 'replication' : 'download', untilStalled(body, this.opts.stallTimeoutMs, abort));
        return;
      } catch (err) {
        failovers.inc();
        this.opts.log.warn({ digest, peer: peer.id, offset: at(), err: (err as Error).message }, 'peer transfer failed; trying the next holder');
      }
    }
    throw new Error(`no holder of ${digest} could send it (${candidates.length} tried)`);
  }
}
