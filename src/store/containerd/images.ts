// Image records in containerd. put() first labels every manifest/index with containerd's GC references,
// so that the tag alone keeps config, layers and platform manifests alive, then releases our blob leases
// (after it returns).
import type { Logger } from 'pino';
import { MANIFEST_MEDIA_TYPES, ManifestInvalidError, children, parseManifest, type ParsedManifest } from '../../oci/manifest.js';
import { NotFoundError, type BlobReader, type ImageRecord, type ImageStore, type Store } from '../store.js';
import type { Descriptor } from '../../oci/digest.js';
import { Code, hasCode, unlessNotFound, type ContainerdClient } from './client.js';
import { releaseBlobs, type LaterReleases } from './leases.js';
import { MAX_MANIFEST_BYTES } from '../../oci/limits.js';


interface WireImage {
  name: string;
  labels: Record<string, string>;
  target: { mediaType: string; digest: string; size: number } | null;
}

export class ContainerdImages implements ImageStore {
  constructor(
    private readonly client: ContainerdClient,
    private readonly blobs: Pick<Store, 'open'>,
    private readonly logger: Logger,
    private readonly releases: LaterReleases,
    /** The leases of uploads under way, which put() leaves alone. */
    private readonly writing: ReadonlySet<string>,
  ) {}

  async list(): Promise<ImageRecord[]> {
    const res = await this.client.unary<{ images: WireImage[] }>('images', 'List', { filters: [] }, '');
    return res.images.map(fromWire);
  }

  async get(name: string): Promise<ImageRecord | undefined> {
    const res = await unlessNotFound(this.client.unary<{ image: WireImage }>('images', 'Get', { name }, name));
    return res && fromWire(res.image);
  }

  async put(record: ImageRecord): Promise<void> {
    const reachable = await this.labelTree(record.target);
    const image = {
      name: record.name,
      labels: record.labels,
      target: { mediaType: record.target.mediaType, digest: record.target.digest, size: record.target.size },
    };
    try {
      await this.client.unary('images', 'Create', { image }, record.name);
    } catch (err) {
      if (!hasCode(err, Code.ALREADY_EXISTS)) throw err;
      await this.client.unary('images', 'Update', { image, updateMask: { paths: ['target', 'labels'] } }, record.name);
    }
    // The tag holds the blobs now, so the leases taken at commit time can go; a transaction each, which the
    // caller (a replication ending, a push's manifest) need not wait for.
    this.releases.add(releaseBlobs(this.client, reachable, this.writing, this.logger), { image: record.name });
  }

  async delete(name: string): Promise<boolean> {
    return (await unlessNotFound(this.client.unary('images', 'Delete', { name }, name).then(() => true))) ?? false;
  }

  /**
   * Sets `containerd.io/gc.ref.content.*` labels on every manifest and index reachable from the target
   * and returns every digest they reference. Index children not held here are skipped (an index may
   * list platforms that were never pulled); their labels are still set, so they are kept once they arrive.
   */
  private async labelTree(target: Descriptor): Promise<Set<string>> {
    const reachable = new Set([target.digest]);
    const queue: Descriptor[] = [target];
    for (let d = queue.shift(); d; d = queue.shift()) {
      if (!MANIFEST_MEDIA_TYPES.includes(d.mediaType)) continue;
      const manifest = await this.readManifest(d, d === target);
      if (!manifest) continue;
      const labels = gcRefLabels(manifest);
      await this.client.unary('content', 'Update', {
        info: { digest: d.digest, labels },
        updateMask: { paths: Object.keys(labels).map((k) => `labels.${k}`) },
      }, d.digest);
      for (const child of children(manifest)) {
        if (reachable.has(child.digest)) continue;
        reachable.add(child.digest);
        queue.push(child);
      }
    }
    return reachable;
  }

  private async readManifest(d: Descriptor, required: boolean): Promise<ParsedManifest | undefined> {
    let reader: BlobReader;
    try {
      reader = await this.blobs.open(d.digest);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      if (required) throw new NotFoundError(`manifest ${d.digest}`);
      this.logger.debug({ digest: d.digest }, 'manifest not held locally; not walking into it');
      return undefined;
    }
    const { size, stream } = reader;
    try {
      if (size > MAX_MANIFEST_BYTES) {
        stream.destroy();
        throw new ManifestInvalidError(`${d.digest} is ${size} bytes, too large for a ${d.mediaType}`);
      }
      const parts: Buffer[] = [];
      for await (const chunk of stream) parts.push(chunk as Buffer);
      return parseManifest(Buffer.concat(parts), d.mediaType);
    } catch (err) {
      // A child that only claims to be a manifest (a config or layer with a manifest's type) is a leaf, as in
      // the registry's own walk (oci/references.ts): the push was valid, the tree ends there.
      if (required || !(err instanceof ManifestInvalidError)) throw err;
      this.logger.debug({ digest: d.digest, err: err.message }, 'not a manifest, though named as one; not walking into it');
      return undefined;
    }
  }
}

/** containerd's GC follows these labels from a referenced blob to its children. */
function gcRefLabels(m: ParsedManifest): Record<string, string> {
  const labels: Record<string, string> = {};
  if (m.config) labels['containerd.io/gc.ref.content.config'] = m.config.digest;
  m.layers.forEach((l, i) => (labels[`containerd.io/gc.ref.content.l.${i}`] = l.digest));
  m.manifests.forEach((c, i) => (labels[`containerd.io/gc.ref.content.m.${i}`] = c.digest));
  return labels;
}

function fromWire(image: WireImage): ImageRecord {
  const t = image.target;
  return {
    name: image.name,
    labels: { ...image.labels },
    target: { mediaType: t?.mediaType ?? '', digest: t?.digest ?? '', size: t?.size ?? 0 },
  };
}
