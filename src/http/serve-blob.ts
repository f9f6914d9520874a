// Blobs over HTTP, as the registry and the peer data plane both answer them: GET or HEAD, whole or one range.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { NotFoundError, type ByteRange, type Store } from '../store/store.js';
import { parseRange } from './range.js';
import { openBlobFile, sendFileRange } from './send-file.js';

/**
 * Answers GET or HEAD of a blob from the store, with single ranges; false when the store does
 * not hold it. Shared by the registry and the peer data plane. Handlers return the reply when this
 * is true: fastify ends an async handler's reply itself, empty, when it resolves to undefined after
 * an await, even with a stream already given to send().
 */
export async function serveBlob(store: Store, digest: string, req: FastifyRequest, reply: FastifyReply, log: Logger): Promise<boolean> {
  const info = await store.stat(digest);
  if (!info) return false;
  const range = blobHeaders(req, reply, digest, info.size);
  if (req.method === 'HEAD') {
    reply.send();
    return true;
  }
  const path = store.localPath(digest);
  if (path) {
    const handle = await openBlobFile(path);
    if (!handle) return false; // deleted since stat
    await sendFileRange(reply, handle, range?.start ?? 0, range?.end ?? info.size - 1, log);
    return true;
  }
  try {
    const { stream } = await store.open(digest, range);
    reply.send(stream);
    return true;
  } catch (err) {
    if (err instanceof NotFoundError) return false; // deleted since stat
    throw err;
  }
}

/** Sets the headers of a blob answer (206 and Content-Range for a range) and returns the range asked for. */
export function blobHeaders(req: FastifyRequest, reply: FastifyReply, digest: string, size: number): ByteRange | undefined {
  const range = parseRange(req.headers.range, size);
  reply
    .header('docker-content-digest', digest)
    .header('accept-ranges', 'bytes')
    .header('content-type', 'application/octet-stream')
    .header('etag', `"${digest}"`);
  if (range) reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`);
  reply.header('content-length', range ? range.end - range.start + 1 : size);
  return range;
}
