// Sizes that bound what is read into memory, wherever it comes from.

/** Largest manifest or index accepted, from a client, a peer, an upstream registry or an image archive (the spec asks registries to take at least 4 MB). */
export const MAX_MANIFEST_BYTES = 4 << 20;
/** Largest manifest read back from the store, where other clients of containerd may have put larger ones. */
export const MAX_STORED_MANIFEST_BYTES = 16 << 20;

/** A body or blob larger than the limit it is read under. */
export class TooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`larger than the limit of ${limit} bytes`);
    this.name = 'TooLargeError';
  }
}

/** Reads a byte stream into memory; throws TooLargeError as soon as it passes `limit` bytes. */
export async function readBounded(source: AsyncIterable<Uint8Array>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of source) {
    total += chunk.length;
    if (total > limit) throw new TooLargeError(limit);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks, total);
}
