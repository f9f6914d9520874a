// GET/HEAD/DELETE /v2/<name>/blobs/<digest>
import { isDigest, NotFoundError } from '../containerd/store.js';
import { blobUnknown, digestInvalid, RegistryError } from './errors.js';
import { parseRange } from './range.js';
import { reachable } from './references.js';
import { openBlobFile, sendFileRange } from './send-file.js';
import type { RouteContext } from './context.js';

export async function getBlob(ctx: RouteContext): Promise<unknown> {
  const { store, reply, ref: digest } = ctx;
  if (!isDigest(digest)) throw digestInvalid('invalid digest', { digest });
  const info = await store.stat(digest);
  if (!info) throw blobUnknown(digest);
  const range = parseRange(ctx.req.headers.range, info.size);
  reply
    .header('docker-content-digest', digest)
    .header('accept-ranges', 'bytes')
    .header('content-type', 'application/octet-stream')
    .header('etag', `"${digest}"`);
  if (range) {
    reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${info.size}`);
  }
  reply.header('content-length', range ? range.end - range.start + 1 : info.size);
  if (ctx.req.method === 'HEAD') return reply.send();
  const path = store.localPath(digest);
  if (path) {
    const handle = await openBlobFile(path);
    if (!handle) throw blobUnknown(digest);
    return sendFileRange(reply, handle, range?.start ?? 0, range?.end ?? info.size - 1, ctx.log);
  }
  try {
    const { stream } = await store.open(digest, range);
    return reply.send(stream);
  } catch (err) {
    // Deleted between stat and open.
    if (err instanceof NotFoundError) throw blobUnknown(digest);
    throw err;
  }
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
