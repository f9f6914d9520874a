// Sends a byte range of a file as the response body through two reused 1 MiB buffers:
// the next chunk is read while the previous one is being written. Streaming the file
// instead allocates a buffer per chunk, and the garbage collection that follows costs much of the
// throughput (docs: Benchmarks).
import { open, type FileHandle } from 'node:fs/promises';
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

export async function sendFileRange(reply: FastifyReply, handle: FileHandle, start: number, end: number, log: Logger, pace?: Pace): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string>);
  const buffers = [Buffer.allocUnsafeSlow(CHUNK), Buffer.allocUnsafeSlow(CHUNK)];
  let gone = false;
  res.once('close', () => (gone = true));
  let written: Promise<void> = Promise.resolve();
  try {
    for (let pos = start, i = 0; pos <= end && !gone; i++) {
      // Safe to fill: this buffer's last write, two chunks ago, was awaited in the previous round.
      const buf = buffers[i & 1];
      const { bytesRead } = await handle.read(buf, 0, Math.min(CHUNK, end - pos + 1), pos);
      if (bytesRead === 0) throw new Error(`blob file ended at ${pos}, expected ${end + 1} bytes`);
      await written;
      await pace?.(bytesRead);
      pos += bytesRead;
      const chunk = buf.subarray(0, bytesRead);
      written = new Promise((resolve, reject) => res.write(chunk, (err) => (err ? reject(err) : resolve())));
    }
    await written;
    res.end();
  } catch (err) {
    if (!gone) log.warn({ err }, 'blob response cut short');
    res.destroy();
  } finally {
    await handle.close();
  }
}
