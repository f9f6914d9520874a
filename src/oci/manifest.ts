// OCI and Docker manifest formats: what a manifest is and what it references.
import type { Descriptor } from './digest.js';

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

export const MANIFEST_MEDIA_TYPES: readonly string[] = Object.values(MediaType);

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerList;
}

export interface ParsedManifest {
  mediaType: string;
  /** Config (if any), then layers, or the manifests of an index. */
  config?: Descriptor;
  layers: Descriptor[];
  manifests: Descriptor[];
  subject?: Descriptor;
}

export class ManifestInvalidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestInvalidError';
  }
}

function descriptor(value: unknown, where: string): Descriptor {
  const d = value as Partial<Descriptor> | null;
  if (!d || typeof d !== 'object' || typeof d.digest !== 'string' || typeof d.size !== 'number'
      || typeof d.mediaType !== 'string' || !/^[a-z0-9]+:[a-zA-Z0-9=_-]+$/.test(d.digest)
      || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw new ManifestInvalidError(`${where}: not a valid descriptor`);
  }
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/** An OCI manifest may omit mediaType: an index is known by its manifests array. */
function inferMediaType(doc: Record<string, unknown>): string {
  return Array.isArray(doc.manifests) ? MediaType.ociIndex : MediaType.ociManifest;
}

/** The media type a stored manifest is served with. */
export function mediaTypeOf(body: Buffer): string {
  try {
    const doc = JSON.parse(body.toString('utf8'));
    return typeof doc?.mediaType === 'string' ? doc.mediaType : inferMediaType(doc ?? {});
  } catch {
    return MediaType.ociManifest;
  }
}

/**
 * Parses a manifest or index. `declared` is the Content-Type it came with;
 * the document's own mediaType wins when present, and the two must agree.
 */
export function parseManifest(body: Buffer, declared?: string): ParsedManifest {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ManifestInvalidError('manifest is not valid JSON');
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new ManifestInvalidError('manifest is not a JSON object');
  const own = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  const declaredType = declared?.split(';')[0].trim();
  if (own && declaredType && MANIFEST_MEDIA_TYPES.includes(declaredType) && own !== declaredType) {
    throw new ManifestInvalidError(`mediaType ${own} does not match Content-Type ${declaredType}`);
  }
  const mediaType = own ?? (declaredType && MANIFEST_MEDIA_TYPES.includes(declaredType) ? declaredType : inferMediaType(doc));
  if (doc.schemaVersion !== 2) throw new ManifestInvalidError('schemaVersion must be 2');
  const subject = doc.subject === undefined ? undefined : descriptor(doc.subject, 'subject');
  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw new ManifestInvalidError('index has no manifests array');
    return { mediaType, layers: [], manifests: doc.manifests.map((m, i) => descriptor(m, `manifests[${i}]`)), subject };
  }
  if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) throw new ManifestInvalidError(`unsupported manifest media type ${mediaType}`);
  if (!Array.isArray(doc.layers)) throw new ManifestInvalidError('manifest has no layers array');
  return {
    mediaType,
    config: descriptor(doc.config, 'config'),
    layers: doc.layers.map((l, i) => descriptor(l, `layers[${i}]`)),
    manifests: [],
    subject,
  };
}

/** Every descriptor a manifest points at, config first. */
export function children(m: ParsedManifest): Descriptor[] {
  return [...(m.config ? [m.config] : []), ...m.layers, ...m.manifests];
}

/** The media type of the manifest or index the bytes are, or undefined when they are none this registry serves. */
export function manifestMediaType(body: Buffer): string | undefined {
  try {
    return parseManifest(body).mediaType;
  } catch (err) {
    if (err instanceof ManifestInvalidError) return undefined;
    throw err;
  }
}
