// The part of an upload that every non-containerd store shares: ordered appends through a running
// sha256 that sees exactly the bytes the backing store acknowledged, and the checks made before publishing.
import { createHash, type Hash } from 'node:crypto';
import { DigestMismatchError, SizeMismatchError } from './store.js';
import { isDigest } from '../oci/digest.js';

/** Appends are batched to this size: fewer, larger writes to the backing file. */
const FLUSH_BYTES = 1 << 20;

export abstract class HashingUpload {
  #hash: Hash = createHash('sha256');
  #offset = 0;

  get offset(): number {
    return this.#offset;
  }

  /**
   * Persists a prefix of `data` at `position` (everything written so far precedes it) and returns how
   * many bytes it wrote: fewer than asked is a short write, and the rest is offered again. `data` is
   * reused once this returns: keep a copy, not `data`.
   */
  protected abstract write(data: Buffer, position: number): Promise<number>;

  /** Called around each append: a file-backed upload holds its descriptor only while one runs. */
  protected async opened(): Promise<void> {}
  protected async closed(): Promise<void> {}

  async append(source: AsyncIterable<Uint8Array>): Promise<number> {
    // Chunks are copied into this buffer, never kept: a source may reuse its buffers (Upload.append).
    let pending: Buffer | undefined;
    let pendingBytes = 0;
    const flush = async (data: Buffer) => {
      for (let done = 0; done < data.length; ) {
        const written = await this.write(data.subarray(done), this.#offset);
        if (!(written > 0)) throw new Error(`the store wrote nothing at offset ${this.#offset}`);
        // Only what was acknowledged is hashed and counted: a resumed upload continues from there.
        this.#hash.update(data.subarray(done, done + written));
        this.#offset += written;
        done += written;
      }
    };
    await this.opened();
    try {
      for await (const chunk of source) {
        if (pendingBytes === 0 && chunk.length >= FLUSH_BYTES) {
          await flush(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
          continue;
        }
        pending ??= Buffer.allocUnsafe(FLUSH_BYTES);
        for (let used = 0; used < chunk.length; ) {
          const n = Math.min(chunk.length - used, FLUSH_BYTES - pendingBytes);
          pending.set(chunk.subarray(used, used + n), pendingBytes);
          pendingBytes += n;
          used += n;
          if (pendingBytes === FLUSH_BYTES) {
            pendingBytes = 0; // a write failing part-way must not have these bytes written again below
            await flush(pending);
          }
        }
      }
    } finally {
      // Bytes that did arrive before a broken connection are kept, so the client can resume after them.
      try {
        if (pending) await flush(pending.subarray(0, pendingBytes));
      } finally {
        await this.closed();
      }
    }
    return this.#offset;
  }

  /** Checks size and digest of everything appended; returns the digest. */
  protected verify(expected: { digest: string; size?: number }): string {
    if (!isDigest(expected.digest)) throw new DigestMismatchError(expected.digest, '(unsupported digest)');
    if (expected.size !== undefined && expected.size !== this.#offset) throw new SizeMismatchError(expected.size, this.#offset);
    const actual = `sha256:${this.#hash.copy().digest('hex')}`;
    if (actual !== expected.digest) throw new DigestMismatchError(expected.digest, actual);
    return actual;
  }
}
