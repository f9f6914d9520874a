// Content discovery: tags list, catalog, referrers.
import { isDigest } from '../oci/digest.js';
import { MediaType } from '../oci/manifest.js';
import type { RouteContext } from './context.js';
import { digestInvalid, RegistryError } from './errors.js';
import { isRepositoryKey, parseImageName, wireName } from '../oci/names.js';
import { readSmallBlob } from '../oci/references.js';

/** Applies `n` and `last` to a sorted list, with the Link header for the next page. */
function paginate(ctx: RouteContext, all: string[], path: string): string[] {
  const sorted = [...new Set(all)].sort();
  const after = ctx.query.last === undefined ? sorted : sorted.filter((t) => t > ctx.query.last!);
  if (ctx.query.n === undefined) return after;
  const n = Number(ctx.query.n);
  if (!Number.isSafeInteger(n) || n < 0) throw new RegistryError(400, 'UNSUPPORTED', 'n must be a non-negative integer', { n: ctx.query.n });
  const page = after.slice(0, n);
  if (after.length > n && n > 0) {
    ctx.reply.header('link', `<${path}?n=${n}&last=${encodeURIComponent(page[page.length - 1])}>; rel="next"`);
  }
  return page;
}

export async function listTags(ctx: RouteContext): Promise<unknown> {
  const names = (await ctx.store.images.list()).map((r) => parseImageName(r.name)).filter((p) => p.repo === ctx.repo);
  if (names.length === 0) throw new RegistryError(404, 'NAME_UNKNOWN', 'repository name not known to registry', { name: ctx.name });
  const tags = paginate(ctx, names.flatMap((p) => (p.tag ? [p.tag] : [])), `/v2/${ctx.name}/tags/list`);
  return ctx.reply.send({ name: ctx.name, tags });
}

export async function catalog(ctx: RouteContext): Promise<unknown> {
  const repos = (await ctx.store.images.list()).map((r) => parseImageName(r.name).repo).filter(isRepositoryKey).map(wireName);
  return ctx.reply.send({ repositories: paginate(ctx, repos, '/v2/_catalog') });
}

interface Referrer {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** A stored document as JSON; undefined when absent or not JSON (whatever is stored, the listing goes on). */
function jsonOf(body: Buffer | undefined): { subject?: { digest?: unknown }; artifactType?: string; config?: { mediaType?: string }; annotations?: Record<string, string> } | undefined {
  try {
    return body && JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

export async function listReferrers(ctx: RouteContext): Promise<unknown> {
  const subject = ctx.ref;
  if (!isDigest(subject)) throw digestInvalid('invalid digest', { digest: subject });
  const records = (await ctx.store.images.list()).filter((r) => parseImageName(r.name).repo === ctx.repo);
  const found = new Map<string, Referrer>();
  for (const { target } of records) {
    if (found.has(target.digest)) continue;
    const doc = jsonOf(await readSmallBlob(ctx.store, target.digest));
    if (doc?.subject?.digest !== subject) continue;
    const artifactType = doc.artifactType ?? doc.config?.mediaType;
    found.set(target.digest, { mediaType: target.mediaType, digest: target.digest, size: target.size, artifactType, annotations: doc.annotations });
  }
  let manifests = [...found.values()];
  const wanted = ctx.query.artifactType;
  if (wanted !== undefined) {
    manifests = manifests.filter((m) => m.artifactType === wanted);
    ctx.reply.header('oci-filters-applied', 'artifactType');
  }
  return ctx.reply
    .header('content-type', MediaType.ociIndex)
    .send(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests })));
}
