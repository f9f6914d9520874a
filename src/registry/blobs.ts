// GET/HEAD/DELETE /v2/<name>/blobs/<digest>
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { NotFoundError, type ByteRange, type Store } from '../store/store.js';
import { isDigest } from '../oci/digest.js';
import { blobUnknown, digestInvalid, RegistryError } from './errors.js';
import { parseRange } from './range.js';
import { reachable } from '../oci/references.js';
import { openBlobFile, sendFileRange } from './send-file.js';
import type { RouteContext } from './context.js';

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

export async function getBlob(ctx: RouteContext): Promise<unknown> {
  const { store, req, reply, ref: digest, log } = ctx;
  if (!isDigest(digest)) throw digestInvalid('invalid digest', { digest });
  if (await serveBlob(store, digest, req, reply, log)) return reply;
  if (!ctx.mirror) throw blobUnknown(digest);
  // Not here. A whole GET reads the blob as it arrives from a peer; anything else waits for it.
  if (req.method === 'GET' && !req.headers.range) {
    const live = await ctx.mirror.streamBlob(digest, { repo: ctx.repo });
    if (live) {
      return reply
        .header('docker-content-digest', digest)
        .header('content-type', 'application/octet-stream')
        .header('content-length', live.size)
        .send(live.stream);
    }
  } else {
    await ctx.mirror.fetchBlob(digest, { origin: { repo: ctx.repo } });
  }
  // Also when the mirror found nothing: the blob may have been stored meanwhile.
  if (await serveBlob(store, digest, req, reply, log)) return reply;
  throw blobUnknown(digest);
}

export async function deleteBlob(ctx: RouteContext): Promise<unknown> {
  const { store, ref: digest } = ctx;
  if (!isDigest(digest)) throw digestInvalid('invalid digest', { digest });
  if (!(await store.stat(digest))) throw blobUnknown(digest);
  const images = await store.images.list();
  if ((await reachable(store, images)).has(digest)) {
    throw new RegistryError(405, 'UNSUPPORTED', 'blob is referenced by an image; delete the manifest first', { digest });
  }
  await store.delete(digest);
  return ctx.reply.code(202).header('content-length', 0).send();
}
