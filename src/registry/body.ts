// Reading request and blob bodies into memory, bounded.
import { RegistryError } from './errors.js';

export async function readAll(source: AsyncIterable<Uint8Array>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of source) {
    total += chunk.length;
    if (total > limit) throw new RegistryError(413, 'SIZE_INVALID', `body exceeds ${limit} bytes`, { limit });
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks, total);
}
