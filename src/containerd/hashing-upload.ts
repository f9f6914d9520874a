// The part of an upload that every non-containerd store shares: ordered
// appends through a running sha256, and the checks made before publishing.
import { createHash, type Hash } from 'node:crypto';
import { DigestMismatchError, SizeMismatchError, isDigest } from './store.js';

/** Appends are batched to this size: fewer, larger writes to the backing file. */
const FLUSH_BYTES = 1 << 20;

export abstract class HashingUpload {
  #hash: Hash = createHash('sha256');
  #offset = 0;

  get offset(): number {
    return this.#offset;
  }

  /** Persists bytes that follow everything written so far. */
  protected abstract write(data: Buffer): Promise<void>;

  async append(source: AsyncIterable<Uint8Array>): Promise<number> {
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async () => {
      if (pendingBytes === 0) return;
      const data = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      await this.write(data);
      this.#hash.update(data);
      this.#offset += data.length;
    };
    try {
      for await (const chunk of source) {
        pending.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
        pendingBytes += chunk.length;
        if (pendingBytes >= FLUSH_BYTES) await flush();
      }
    } finally {
      // Bytes that did arrive before a broken connection are kept, so the client can resume after them.
      await flush();
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
