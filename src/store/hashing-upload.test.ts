// The part of uploads the embedded and memory stores share: what a store that fails part-way is left with.
import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { HashingUpload } from './hashing-upload.js';

/** Keeps what it is given by position; takes half of its second write, then fails once. */
class FailingOnce extends HashingUpload {
  readonly bytes = new Map<number, number>();
  #writes = 0;

  protected async write(data: Buffer, position: number): Promise<number> {
    this.#writes++;
    if (this.#writes === 3) throw new Error('disk full');
    const n = this.#writes === 2 ? data.length >> 1 : data.length;
    for (let i = 0; i < n; i++) {
      if (this.bytes.has(position + i)) throw new Error(`byte ${position + i} written twice`);
      this.bytes.set(position + i, data[i]);
    }
    return n;
  }
}

it('keeps the bytes in order, none twice, when the store fails part-way, and counts only what it kept', async () => {
  const data = randomBytes(3 << 20);
  const upload = new FailingOnce();
  async function* pieces() {
    for (let at = 0; at < data.length; at += 100_000) yield data.subarray(at, at + 100_000);
  }
  await expect(upload.append(pieces())).rejects.toThrow('disk full');
  expect(upload.offset).toBe(upload.bytes.size);
  expect(Buffer.from([...upload.bytes.keys()].sort((a, b) => a - b).map((at) => upload.bytes.get(at)!)).equals(data.subarray(0, upload.offset))).toBe(true);
});
