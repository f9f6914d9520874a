// Several blobs from one holder on one stream, back to back in the order asked (the peer data plane's
// /peer/v1/sequence). A replication pipeline asks the node before it for all of an image's layers at
// once: a request per layer crossed the full queues of both links before its first byte came back, and
// a second layer in flight to hide that was a second stream on every link. The holder ends the stream
// early when it cannot send the next blob; nothing here is trusted: the mirror verifies every blob and
// takes what the stream did not bring from other holders.
import type { PeerClient } from './peer-client.js';
import type { DataPlane } from '../dht/membership.js';
import { AWAIT_COPY_MS, PATIENT_HEADER, SEQUENCE_PATH, type Piece, type SequenceLevel } from './peer-protocol.js';
import { untilStalled } from './until-stalled.js';

/** A blob's bytes, or a range of them, as they come from a holder, for the mirror to verify (see FetchOptions). */
export interface BlobSource {
  peer: string;
  /** The whole blob's size. */
  size: number;
  /** Where in the blob the bytes begin (0 for a whole blob). */
  offset: number;
  length: number;
  bytes: AsyncIterable<Uint8Array>;
}

/** Blobs coming one after another from one holder. */
export interface SourceSequence {
  /** The next piece (the next one asked for), once the one before has been read or skipped; undefined once broken. */
  next(piece: Piece): Promise<BlobSource | undefined>;
  close(err?: Error): void;
}

/**
 * The most of a piece left unread (its lane filled by others meanwhile) that is read off the stream and
 * dropped to get to the next piece; with more left, the stream is asked again from the next piece, so that a
 * slow holder does not spend its upload on bytes nobody wants while the next piece waits behind them.
 */
export const SKIP_MAX_BYTES = 256 << 10;

interface Opts {
  peers: PeerClient;
  stallTimeoutMs: number;
  selfId?: string;
  /** Asked by a tree's root, levelled so with the others (peer-protocol.ts, SEQUENCE_PATH). */
  level?: SequenceLevel;
}

/** One stream of pieces from a holder. */
interface Stream {
  chunks: AsyncIterator<Uint8Array>;
  abort(err: Error): void;
}

export class BlobSequence implements SourceSequence {
  /** Bytes of the piece being read that its reader has not taken: skipped before the next piece. */
  #left = 0;
  #rest?: Buffer;
  #broken?: Error;
  /** Pieces asked for and not yet handed out: the last ones of `pieces`. */
  #unasked: number;
  /** A new stream being asked for (see #askAgain). */
  #asking?: AbortController;
  /** Bumped when the stream is asked again: a read of the one before no longer concerns the sequence. */
  #streams = 0;
  /** The read under way, whose reader may have gone (its lane filled by others): the next piece waits for it. */
  #reading: Promise<unknown> = Promise.resolve();

  private constructor(private readonly holder: DataPlane, private readonly pieces: Piece[], private readonly opts: Opts, private stream: Stream) {
    this.#unasked = pieces.length;
  }

  get peer(): string {
    return this.holder.id;
  }

  /**
   * Asks `peer` for `pieces` in this order; throws when it does not answer with the first. `selfId`
   * tells the holder who it feeds: others asking it for these blobs meanwhile are sent here.
   */
  static async open(peer: DataPlane, pieces: Piece[], opts: Opts): Promise<BlobSequence> {
    return new BlobSequence(peer, pieces, opts, await ask(peer, pieces, opts));
  }

  async next(piece: Piece): Promise<BlobSource | undefined> {
    try {
      if (this.#left > SKIP_MAX_BYTES && !this.#broken) await this.#askAgain();
      else await this.#reading;
      while (this.#left > 0 && !this.#broken) await this.#take(this.#left);
    } catch (err) {
      this.close(err as Error);
    }
    if (this.#broken) return undefined;
    this.#left = piece.length;
    this.#unasked--;
    return { peer: this.peer, size: piece.size, offset: piece.offset, length: piece.length, bytes: this.#bytes(piece.digest) };
  }

  close(err?: Error): void {
    if (this.#broken) return;
    this.#broken = err ?? new Error('sequence closed');
    this.#asking?.abort(this.#broken);
    // Everything asked for was read: the holder has ended the stream, and reading its end keeps the connection.
    if (!err && this.#unasked === 0 && this.#left === 0 && !this.#rest) {
      const { chunks, abort } = this.stream;
      void chunks.next().then(({ done }) => done || abort(new Error('the holder sent more than asked for')), () => undefined);
      return;
    }
    this.#end(this.#broken);
  }

  /** Drops the stream and asks for the pieces not yet handed out on a new one. */
  async #askAgain(): Promise<void> {
    this.#streams++;
    this.#end(new Error('the rest of the piece is not wanted'));
    [this.#left, this.#rest] = [0, undefined];
    this.#asking = new AbortController();
    try {
      this.stream = await ask(this.holder, this.pieces.slice(this.pieces.length - this.#unasked), this.opts, this.#asking);
    } finally {
      this.#asking = undefined;
    }
  }

  #end(err: Error): void {
    this.stream.abort(err);
    // Ends the stall guard; a read under way fails with the abort, and that failure is this close.
    this.stream.chunks.return?.().catch(() => undefined);
  }

  async *#bytes(digest: string): AsyncGenerator<Uint8Array> {
    try {
      while (this.#left > 0) yield await this.#take(this.#left);
    } catch (err) {
      if (!(err instanceof SupersededRead)) this.close(err as Error);
      throw new Error(`the sequence from ${this.peer} broke in ${digest}: ${(err as Error).message}`);
    }
  }

  /** Up to `max` bytes of the piece being read. */
  #take(max: number): Promise<Uint8Array> {
    const taking = this.#takeFrom(this.#streams, max);
    this.#reading = taking.catch(() => undefined);
    return taking;
  }

  async #takeFrom(stream: number, max: number): Promise<Uint8Array> {
    if (this.#broken) throw this.#broken;
    let chunk: Uint8Array | undefined = this.#rest;
    this.#rest = undefined;
    if (!chunk) {
      const read = await this.stream.chunks.next().catch((err: unknown) => {
        throw stream === this.#streams ? err : new SupersededRead();
      });
      // Asked again meanwhile: these bytes are the ended stream's, not the piece now read.
      if (stream !== this.#streams) throw new SupersededRead();
      if (read.done) throw new Error('the holder ended the sequence');
      chunk = read.value;
    }
    if (chunk.length > max) {
      this.#rest = Buffer.from(chunk.buffer, chunk.byteOffset + max, chunk.length - max);
      chunk = chunk.subarray(0, max);
    }
    this.#left -= chunk.length;
    return chunk;
  }
}

/** A read of a stream that was asked again meanwhile: its reader had gone; the sequence goes on. */
class SupersededRead extends Error {
  constructor() {
    super('the stream was asked again');
  }
}

/** Asks `peer` for `pieces` on one stream; throws when it does not answer with the first. */
async function ask(peer: DataPlane, pieces: Piece[], opts: Opts, ctl = new AbortController()): Promise<Stream> {
  const { peers, stallTimeoutMs, selfId, level } = opts;
  // The holder answers once it can send the first blob, which it may wait for.
  const noAnswer = setTimeout(() => ctl.abort(new Error('no answer')), stallTimeoutMs + AWAIT_COPY_MS);
  try {
    const res = await peers.request(peer, SEQUENCE_PATH, {
      method: 'POST',
      body: JSON.stringify({ blobs: pieces.map(({ digest, size, offset, length }) => ({ digest, size, offset, length })), level }),
      headers: { [PATIENT_HEADER]: selfId ?? '' },
      signal: ctl.signal,
    });
    if (res.status !== 200) {
      res.body.destroy();
      throw new Error(`${peer.id} answered ${res.status} to a sequence of ${pieces.length} pieces`);
    }
    const stalled = () => ctl.abort(new Error(`no byte from ${peer.id} for ${stallTimeoutMs} ms`));
    return { chunks: untilStalled(res.body, stallTimeoutMs, stalled)[Symbol.asyncIterator](), abort: (err: Error) => ctl.abort(err) };
  } finally {
    clearTimeout(noAnswer);
  }
}
