// Sends a response body through two reused 1 MiB buffers: the next chunk is read while the previous
// one is being written. Streaming a file instead allocates a buffer per chunk, and the garbage
// collection that follows costs much of the throughput (docs: Benchmarks).
import { open, type FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { Logger } from 'pino';

const CHUNK = 1 << 20;

/** Opens the file; undefined when it is gone (so the caller can still answer 404). */
export async function openBlobFile(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Waits until `bytes` more may be sent (a bandwidth limit). */
export type Pace = (bytes: number) => Promise<void>;

/** The stream's chunks, each once `pace` lets it go; the stream itself without a pace. */
export function paced(stream: Readable, pace: Pace | undefined): Readable {
  if (!pace) return stream;
  return Readable.from((async function* () {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      await pace(chunk.length);
      yield chunk;
    }
  })());
}

/**
 * Sends the chunks as the response body. The source may reuse a chunk's buffer once the chunk after it has been
 * asked for: each write is done before the next but one begins.
 */
export async function sendChunks(reply: FastifyReply, chunks: AsyncIterable<Uint8Array>, log: Logger, pace?: Pace): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string>);
  let written: Promise<void> = Promise.resolve();
  try {
    for await (const chunk of chunks) {
      await written;
      // Also when the client left before the first chunk: 'close' was then emitted already.
      if (res.destroyed) break;
      await pace?.(chunk.length);
      written = write(res, chunk);
      // Awaited before the next write; when the source fails first, the failure below is the one that counts.
      written.catch(() => undefined);
    }
    await written;
    res.end();
  } catch (err) {
    if (!res.destroyed) log.warn({ err }, 'blob response cut short');
    res.destroy();
  }
}

/**
 * Writes the chunk; settles once it is written, or once the connection has gone: Node does not call a write's
 * callback when the client hangs up while the write waits, and the source would then never be let go.
 */
function write(res: ServerResponse, chunk: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    res.once('close', resolve);
    res.write(chunk, (err) => {
      res.off('close', resolve);
      if (err) reject(err);
      else resolve();
    });
  });
}

/** Bytes `start..end` (inclusive) of the file, read into two buffers taken in turn. */
async function* fileChunks(handle: FileHandle, start: number, end: number): AsyncGenerator<Buffer> {
  const buffers = [Buffer.allocUnsafeSlow(CHUNK), Buffer.allocUnsafeSlow(CHUNK)];
  for (let pos = start, i = 0; pos <= end; i++) {
    const buf = buffers[i & 1];
    const { bytesRead } = await handle.read(buf, 0, Math.min(CHUNK, end - pos + 1), pos);
    if (bytesRead === 0) throw new Error(`blob file ended at ${pos}, expected ${end + 1} bytes`);
    pos += bytesRead;
    yield buf.subarray(0, bytesRead);
  }
}

export async function sendFileRange(reply: FastifyReply, handle: FileHandle, start: number, end: number, log: Logger, pace?: Pace): Promise<void> {
  try {
    await sendChunks(reply, fileChunks(handle, start, end), log, pace);
  } finally {
    await handle.close();
  }
}
