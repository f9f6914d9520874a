// The push API for blobs: POST (monolithic, mount, or session start), PATCH, PUT, GET, DELETE of uploads.
import { isDigest } from '../oci/digest.js';
import { bodyOf, type RouteContext } from './context.js';
import { digestInvalid } from './errors.js';
import { parseContentRange } from './content-range.js';
import type { ByteRange } from '../store/store.js';
import { chunkRefused, rangeHeader, tooLarge } from './upload-sessions.js';

const uploadUrl = (ctx: RouteContext, id: string) => `/v2/${ctx.name}/blobs/uploads/${id}`;

/** Labels that tell containerd where a blob came from (as `ctr pull` records them). */
export function sourceLabels(repo: string): Record<string, string> {
  const slash = repo.indexOf('/');
  return { [`containerd.io/distribution.source.${repo.slice(0, slash)}`]: repo.slice(slash + 1) };
}

function checkDeclaredLength(ctx: RouteContext): void {
  const declared = Number(ctx.req.headers['content-length'] ?? 0);
  if (declared > ctx.uploads.limits.maxBlobBytes) throw tooLarge(ctx.uploads.limits.maxBlobBytes);
}

/** 201 for a stored blob or manifest, with where to fetch it. */
export function created(ctx: RouteContext, digest: string, kind: 'blobs' | 'manifests' = 'blobs'): unknown {
  return ctx.reply
    .code(201)
    .header('location', `/v2/${ctx.name}/${kind}/${digest}`)
    .header('docker-content-digest', digest)
    .header('content-length', 0)
    .send();
}

function accepted(ctx: RouteContext, id: string, offset: number): unknown {
  return ctx.reply
    .code(202)
    .header('location', uploadUrl(ctx, id))
    .header('range', rangeHeader(offset))
    .header('docker-upload-uuid', id)
    .header('content-length', 0)
    .send();
}

export async function startUpload(ctx: RouteContext): Promise<unknown> {
  const { query, store, uploads } = ctx;
  if (query.mount) {
    // The store is content-addressed across repositories: a blob it holds can be mounted anywhere.
    if (isDigest(query.mount) && (await store.stat(query.mount))) return created(ctx, query.mount);
  }
  checkDeclaredLength(ctx);
  // Refused before a session begins: a client's mistake is no session cancelled.
  if (query.digest !== undefined && !isDigest(query.digest)) throw digestInvalid('invalid digest', { digest: query.digest });
  const { id } = await uploads.start(ctx.repo, ctx.req.ip);
  if (query.digest === undefined) return accepted(ctx, id, 0);
  try {
    await uploads.append(ctx.repo, id, bodyOf(ctx));
  } catch (err) {
    // The client never learned this session's id, so it cannot resume it.
    await uploads.discard(id);
    throw err;
  }
  await uploads.finish(ctx.repo, id, query.digest, sourceLabels(ctx.repo));
  return created(ctx, query.digest);
}

/**
 * The chunk's Content-Range, checked against its Content-Length before a byte is written. A 416 carries Range, where
 * the upload stands, so that the client can go on from there (as after a chunk out of order).
 */
function chunkRange(ctx: RouteContext): ByteRange | undefined {
  const range = parseContentRange(ctx.req.headers['content-range']);
  const declared = ctx.req.headers['content-length'];
  if (range && declared !== undefined && Number(declared) !== range.end - range.start + 1) {
    throw chunkRefused(`Content-Range ${range.start}-${range.end} is ${range.end - range.start + 1} bytes; Content-Length says ${declared}`, ctx.uploads.get(ctx.repo, ctx.ref).offset);
  }
  return range;
}

export async function patchUpload(ctx: RouteContext): Promise<unknown> {
  checkDeclaredLength(ctx);
  const range = chunkRange(ctx);
  const offset = await ctx.uploads.append(ctx.repo, ctx.ref, bodyOf(ctx), range?.start);
  if (range && offset !== range.end + 1) {
    throw chunkRefused(`Content-Range ends at ${range.end}, body ended at ${offset - 1}`, offset);
  }
  return accepted(ctx, ctx.ref, offset);
}

export async function finishUpload(ctx: RouteContext): Promise<unknown> {
  const digest = ctx.query.digest;
  if (!digest || !isDigest(digest)) {
    throw digestInvalid('a valid ?digest= is required to complete an upload', { digest });
  }
  checkDeclaredLength(ctx);
  const range = chunkRange(ctx);
  const before = ctx.uploads.get(ctx.repo, ctx.ref).offset;
  const after = await ctx.uploads.append(ctx.repo, ctx.ref, bodyOf(ctx), range?.start);
  // A PUT that brought bytes would bring them again when retried: only one without may find the session after a 503.
  await ctx.uploads.finish(ctx.repo, ctx.ref, digest, sourceLabels(ctx.repo), after === before);
  return created(ctx, digest);
}

export async function uploadStatus(ctx: RouteContext): Promise<unknown> {
  const upload = ctx.uploads.get(ctx.repo, ctx.ref);
  return ctx.reply
    .code(204)
    .header('location', uploadUrl(ctx, ctx.ref))
    .header('range', rangeHeader(upload.offset))
    .header('docker-upload-uuid', ctx.ref)
    .send();
}

export async function cancelUpload(ctx: RouteContext): Promise<unknown> {
  await ctx.uploads.cancel(ctx.repo, ctx.ref);
  return ctx.reply.code(204).send();
}
