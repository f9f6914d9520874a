// What a push sends: every config and layer once, then the manifests, children before parents, the root
// last. With a platform, only that platform's manifest of an index (and the tag then names it).
import type { Descriptor } from '../../oci/digest.js';
import { ManifestInvalidError, isIndexMediaType, parseManifest } from '../../oci/manifest.js';
import { PusshError } from './errors.js';
import { formatPlatform, platformMatches, type Platform } from './refs.js';
import { readBlob, type ImageSource, type IndexEntry } from './source.js';

export interface PlannedBlob {
  descriptor: Descriptor;
  kind: 'config' | 'layer';
}

export interface PushPlan {
  /** The manifest (or index) the tag will name. */
  root: Descriptor;
  blobs: PlannedBlob[];
  /** Children before parents; the last is the root. */
  manifests: { descriptor: Descriptor; body: Buffer }[];
  /** The platform pushed, when one was chosen from an index. */
  platform?: string;
}

function parse(body: Buffer, d: Descriptor, where: string) {
  try {
    return parseManifest(body, d.mediaType);
  } catch (err) {
    if (err instanceof ManifestInvalidError) throw new PusshError('failed', `${where}: manifest ${d.digest} is invalid: ${err.message}`);
    throw err;
  }
}

/** An index's entries with their platforms (parseManifest keeps only the descriptors). */
function indexEntries(body: Buffer): IndexEntry[] {
  return (JSON.parse(body.toString('utf8')) as { manifests?: IndexEntry[] }).manifests ?? [];
}

/** The variant a platform means when it names none, as containerd's platform matching has it. */
const DEFAULT_VARIANT: Record<string, string> = { arm: 'v7', arm64: 'v8' };

/**
 * The entry of the index for `want`, among those held locally (a pull keeps one of linux/arm's v6 and v7):
 * the default variant first when none is asked for.
 */
async function choosePlatform(source: ImageSource, index: Descriptor, body: Buffer, want: Platform): Promise<Descriptor> {
  const entries = indexEntries(body);
  const matching = entries.filter((e) => platformMatches(want, e.platform));
  if (matching.length === 0) {
    const listed = entries.filter((e) => e.platform && e.platform.os !== 'unknown').map((e) => formatPlatform(e.platform!));
    throw new PusshError('image-not-found', `${source.description}: the image has no ${formatPlatform(want)} (it has ${listed.join(', ') || 'no platforms'})`);
  }
  const held: IndexEntry[] = [];
  for (const e of matching) if (await source.has(e.digest)) held.push(e);
  const found = held.find((e) => e.platform?.variant === (want.variant ?? DEFAULT_VARIANT[want.architecture])) ?? held[0];
  if (!found) {
    const named = matching.map((e) => `${formatPlatform(e.platform!)} (${e.digest})`).join(', ');
    throw new PusshError('image-not-found', `${source.description}: ${named} of ${index.digest} ${matching.length > 1 ? 'are' : 'is'} not held locally`);
  }
  return { mediaType: found.mediaType, digest: found.digest, size: found.size };
}

export async function planPush(source: ImageSource, platform?: Platform): Promise<PushPlan> {
  const where = source.description;
  let root = source.root;
  let rootBody = await readBlob(source, root.digest);
  let chosen: string | undefined;
  if (platform && isIndexMediaType(parse(rootBody, root, where).mediaType)) {
    root = await choosePlatform(source, root, rootBody, platform);
    rootBody = await readBlob(source, root.digest);
    chosen = formatPlatform(platform);
  }
  const blobs = new Map<string, PlannedBlob>();
  const manifests: PushPlan['manifests'] = [];
  const seen = new Set<string>();

  const visit = async (d: Descriptor, body: Buffer): Promise<void> => {
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    const m = parse(body, d, where);
    if (isIndexMediaType(m.mediaType)) {
      const absent: string[] = [];
      for (const child of indexEntries(body)) {
        if (!(await source.has(child.digest))) absent.push(child.platform ? formatPlatform(child.platform) : child.digest);
        else await visit(child, await readBlob(source, child.digest));
      }
      if (absent.length) {
        throw new PusshError('image-not-found', `${where}: the index lists ${absent.join(', ')} but only part of it is held locally; push one platform with --platform os/arch`);
      }
    } else {
      if (m.config) blobs.set(m.config.digest, { descriptor: m.config, kind: 'config' });
      for (const l of m.layers) if (!blobs.has(l.digest)) blobs.set(l.digest, { descriptor: l, kind: 'layer' });
      for (const b of [m.config, ...m.layers]) {
        if (b && !(await source.has(b.digest))) throw new PusshError('image-not-found', `${where}: blob ${b.digest} of ${d.digest} is not held locally`);
      }
    }
    manifests.push({ descriptor: { mediaType: m.mediaType, digest: d.digest, size: body.length }, body });
  };
  await visit(root, rootBody);

  if (platform && !chosen) {
    // A single-platform image: push it if it is that platform, say so otherwise.
    const config = [...blobs.values()].find((b) => b.kind === 'config');
    const have = config && (JSON.parse((await readBlob(source, config.descriptor.digest)).toString('utf8')) as Partial<Platform>);
    if (have && !platformMatches(platform, have)) {
      throw new PusshError('image-not-found', `${where}: the image is ${formatPlatform(have)}, not ${formatPlatform(platform)}`);
    }
    chosen = formatPlatform(platform);
  }
  return { root: manifests[manifests.length - 1].descriptor, blobs: [...blobs.values()], manifests, platform: chosen };
}
