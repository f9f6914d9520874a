// GET/HEAD/PUT/DELETE /v2/<name>/manifests/<tag|digest>
import { ORIGIN_LABEL, putBlob } from '../store/store.js';
import { digestOf, isDigest, type Descriptor } from '../oci/digest.js';
import { children, ManifestInvalidError, manifestMediaType, parseManifest, type ParsedManifest } from '../oci/manifest.js';
import { readBounded } from '../oci/limits.js';
import { bodyOf, REPLICATE_HEADER, type PushOptions, type RouteContext } from './context.js';
import { digestInvalid, manifestUnknown, RegistryError } from './errors.js';
import { digestImageName, isTag, parseImageName, tagImageName } from '../oci/names.js';
import { reachable, readManifest, readSmallBlob } from '../oci/references.js';
import { created, sourceLabels } from './uploads.js';

/** The manifest a reference names in this repository and its bytes, from the store or else from the mesh. */
async function resolve(ctx: RouteContext): Promise<{ target: Descriptor; body: Buffer } | undefined> {
  const { store, maxManifestBytes: limit } = ctx;
  const requestedIn = { repo: ctx.repo, manifest: true };
  if (isDigest(ctx.ref)) {
    const body = await readSmallBlob(store, ctx.ref, limit, requestedIn);
    // A blob that is not a manifest (a layer, a config) is not served as one.
    const mediaType = body && manifestMediaType(body);
    return mediaType ? { target: { mediaType, digest: ctx.ref, size: body!.length }, body: body! } : undefined;
  }
  if (!isTag(ctx.ref)) return undefined;
  const target = (await store.images.get(tagImageName(ctx.repo, ctx.ref)))?.target;
  const body = target && (await readSmallBlob(store, target.digest, limit, requestedIn));
  // An upstream's tag may name a blob that is not a manifest: not served as one either.
  return body && manifestMediaType(body) ? { target: target!, body } : undefined;
}

export async function getManifest(ctx: RouteContext): Promise<unknown> {
  const found = await resolve(ctx);
  if (!found) throw manifestUnknown(ctx.ref);
  const { target, body } = found;
  ctx.reply
    .header('content-type', target.mediaType)
    .header('docker-content-digest', target.digest)
    .header('etag', `"${target.digest}"`)
    .header('content-length', body.length);
  return ctx.req.method === 'HEAD' ? ctx.reply.send() : ctx.reply.send(body);
}

function parse(body: Buffer, contentType: string | undefined): ParsedManifest {
  try {
    return parseManifest(body, contentType);
  } catch (err) {
    if (err instanceof ManifestInvalidError) throw new RegistryError(400, 'MANIFEST_INVALID', err.message);
    throw err;
  }
}

/** Drops `repo@digest` records made redundant by a tag that now keeps these manifests. */
async function dropDigestRecords(ctx: RouteContext, digests: string[]): Promise<void> {
  for (const digest of digests) {
    const name = digestImageName(ctx.repo, digest);
    const record = await ctx.store.images.get(name);
    if (!record) continue;
    const found = await readManifest(ctx.store, digest, record.target.mediaType);
    // Referrers stay listed by digest, so that the referrers API still finds them.
    if (!found?.manifest.subject) await ctx.store.images.delete(name);
  }
}

function pushOptions(ctx: RouteContext): PushOptions {
  const replicate = ctx.req.headers[REPLICATE_HEADER];
  const options: PushOptions = typeof replicate === 'string' ? { replicate } : {};
  try {
    ctx.pushes?.check(options);
  } catch (err) {
    throw new RegistryError(400, 'MANIFEST_INVALID', (err as Error).message, { header: REPLICATE_HEADER });
  }
  return options;
}

/** Every blob a manifest references is held, with the size it claims; what an index lists is a manifest. */
async function checkReferences(ctx: RouteContext, manifest: ParsedManifest): Promise<void> {
  // Each blob once, however often it is listed: a large index of repeated entries costs one look each.
  const sizes = new Map<string, number>();
  for (const child of children(manifest)) {
    const known = sizes.get(child.digest) ?? (await ctx.store.stat(child.digest))?.size;
    if (known === undefined) {
      throw new RegistryError(400, 'MANIFEST_BLOB_UNKNOWN', 'manifest references a blob this registry does not hold', { digest: child.digest });
    }
    if (known !== child.size) {
      throw new RegistryError(400, 'MANIFEST_INVALID', `descriptor of ${child.digest} says ${child.size} bytes; the blob has ${known}`, { digest: child.digest });
    }
    sizes.set(child.digest, known);
  }
  const checked = new Set<string>();
  for (const entry of manifest.manifests) {
    if (checked.has(`${entry.mediaType} ${entry.digest}`)) continue;
    checked.add(`${entry.mediaType} ${entry.digest}`);
    const body = await readSmallBlob(ctx.store, entry.digest, ctx.maxManifestBytes);
    try {
      if (!body) throw new ManifestInvalidError('too large to be a manifest');
      parseManifest(body, entry.mediaType);
    } catch (err) {
      if (!(err instanceof ManifestInvalidError)) throw err;
      throw new RegistryError(400, 'MANIFEST_INVALID', `index entry ${entry.digest} is not a manifest: ${err.message}`, { digest: entry.digest });
    }
  }
}

export async function putManifest(ctx: RouteContext): Promise<unknown> {
  const { store, ref } = ctx;
  if (!isDigest(ref) && !isTag(ref)) {
    if (/^[a-z0-9]+:/.test(ref)) throw digestInvalid('unsupported digest', { digest: ref });
    throw new RegistryError(400, 'MANIFEST_INVALID', 'invalid tag', { tag: ref });
  }
  const body = await readBounded(bodyOf(ctx), ctx.maxManifestBytes);
  const digest = digestOf(body);
  if (isDigest(ref) && ref !== digest) throw digestInvalid('manifest digest does not match the reference', { reference: ref, digest });
  const manifest = parse(body, ctx.req.headers['content-type']);
  const options = pushOptions(ctx);
  await checkReferences(ctx, manifest);
  await putBlob(store, body, digest, sourceLabels(ctx.repo));
  const target = { mediaType: manifest.mediaType, digest, size: body.length };
  if (isTag(ref)) {
    const name = tagImageName(ctx.repo, ref);
    await ctx.tagWrites.run(name, async () => {
      const labels = { ...ctx.pushes?.labels(name, target, options), [ORIGIN_LABEL]: 'pushed' };
      await store.images.put({ name, target, labels });
      ctx.pushes?.pushed(name, digest, options, labels);
    });
    await dropDigestRecords(ctx, [digest, ...manifest.manifests.map((m) => m.digest)]);
  } else {
    await store.images.put({ name: digestImageName(ctx.repo, digest), target, labels: { [ORIGIN_LABEL]: 'pushed' } });
  }
  ctx.log.info({ repo: ctx.repo, reference: ref, digest }, 'manifest pushed');
  if (manifest.subject) ctx.reply.header('oci-subject', manifest.subject.digest);
  return created(ctx, digest, 'manifests');
}

export async function deleteManifest(ctx: RouteContext): Promise<unknown> {
  const { store, ref } = ctx;
  if (!isDigest(ref)) {
    if (!isTag(ref) || !(await store.images.delete(tagImageName(ctx.repo, ref)))) throw manifestUnknown(ref);
    return ctx.reply.code(202).header('content-length', 0).send();
  }
  const records = await store.images.list();
  const named = records.filter((r) => r.target.digest === ref && parseImageName(r.name).repo === ctx.repo);
  // No record names it (its tags are gone): a manifest still, not any blob, or DELETE would take a layer.
  if (named.length === 0) {
    const body = await readSmallBlob(store, ref);
    if (!body || !manifestMediaType(body)) throw manifestUnknown(ref);
  }
  // Everything that can fail before anything changes: a delete is all or nothing.
  const keep = await reachable(store, records.filter((r) => !named.includes(r)));
  for (const r of named) await store.images.delete(r.name);
  if (!keep.has(ref)) await store.delete(ref);
  return ctx.reply.code(202).header('content-length', 0).send();
}
