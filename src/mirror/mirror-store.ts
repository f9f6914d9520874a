// The mirror as a store, in the shape of distribution's pull-through blob store: what this host holds
// is answered from the local store; what it lacks, when a client asks for it in a mirrored repository,
// is opened as a live read of what arrives from the peers (or the upstream registry), verified before
// the last byte is given and kept in the local store afterwards. Everything else is the local store.
import { isDigest } from '../oci/digest.js';
import { parseImageName } from '../oci/names.js';
import { NotFoundError, type BlobReader, type ByteRange, type ImageStore, type RequestedIn, type Store } from '../store/store.js';
import type { Mirror } from './mirror.js';

export interface MirrorStoreOptions {
  /** Registries whose images are looked for in the mesh (`docker.io`, `ghcr.io`); empty: all. */
  registries?: string[];
}

export function mirrorStore(local: Store, mirror: Mirror, opts: MirrorStoreOptions = {}): Store {
  const mirrored = (repo: string) => !opts.registries?.length || opts.registries.includes(repo.slice(0, repo.indexOf('/')));

  const open = async (digest: string, range?: ByteRange, requestedIn?: RequestedIn): Promise<BlobReader> => {
    try {
      return await local.open(digest, range);
    } catch (err) {
      if (!(err instanceof NotFoundError) || !requestedIn || !mirrored(requestedIn.repo) || !isDigest(digest)) throw err;
    }
    // A whole blob is read as it arrives; a range once the blob is here.
    if (!range) {
      const live = await mirror.stream(digest, requestedIn);
      if (live) return live;
    } else {
      await mirror.fetch(digest, { requestedIn }).stored;
    }
    // Also when nobody sent it: the blob may have been stored meanwhile.
    return local.open(digest, range);
  };

  const images: ImageStore = {
    list: () => local.images.list(),
    put: (record) => local.images.put(record),
    delete: (name) => local.images.delete(name),
    // A tag this host lacks may be known in the mesh; names by digest are this host's own records.
    get: async (name) => {
      const record = await local.images.get(name);
      const { repo, tag } = parseImageName(name);
      if (record || !tag || !mirrored(repo)) return record;
      const target = await mirror.resolveTag(name);
      return target && { name, target, labels: {} };
    },
  };

  return {
    kind: local.kind,
    stat: (digest) => local.stat(digest),
    open,
    localPath: (digest) => local.localPath(digest),
    beginUpload: (digest) => local.beginUpload(digest),
    delete: (digest) => local.delete(digest),
    blobs: () => local.blobs(),
    images,
    contentDir: local.contentDir,
    ...(local.containerImages && { containerImages: () => local.containerImages!() }),
    events: (signal) => local.events(signal),
    close: () => local.close(),
  };
}
