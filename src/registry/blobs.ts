// GET/HEAD/DELETE /v2/<name>/blobs/<digest>
import { serveBlob, type ServedFrom } from '../http/serve-blob.js';
import { isDigest } from '../oci/digest.js';
import { reachable } from '../oci/references.js';
import type { RouteContext } from './context.js';
import { blobUnknown, digestInvalid, RegistryError } from './errors.js';
import { blobsServed, sentBytes } from './metrics.js';

export async function getBlob(ctx: RouteContext): Promise<unknown> {
  const { store, req, reply, ref: digest, log } = ctx;
  if (!isDigest(digest)) throw digestInvalid('invalid digest', { digest });
  const onSent = (bytes: number, from: ServedFrom) => sentBytes.inc({ source: from }, bytes);
  const source = await serveBlob(store, digest, req, reply, log, { requestedIn: { repo: ctx.repo }, onSent });
  if (!source) throw blobUnknown(digest);
  blobsServed.inc({ source });
  return reply;
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
