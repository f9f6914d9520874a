// An image name (`docker.io/library/app:1`) to the manifest it names: asked of the peers that announce
// the name, else of the image's own registry (`--upstream`). The manifest is then fetched by digest
// and verified like any blob.
import type { Logger } from 'pino';
import { isDigest, type Descriptor } from '../oci/digest.js';
import { MAX_MANIFEST_BYTES, readBounded } from '../oci/limits.js';
import { mediaTypeOf } from '../oci/manifest.js';
import { parseImageName } from '../oci/names.js';
import { readSmallBlob } from '../oci/references.js';
import type { RequestedIn } from '../store/store.js';
import type { Store } from '../store/store.js';
import type { Holders } from './holders.js';
import type { PeerClient } from './peer-client.js';
import { IMAGES_PATH } from './peer-protocol.js';
import type { UpstreamSource } from './pull-through.js';

export interface TagResolverDeps {
  store: Store;
  holders: Holders;
  /** Fetches a blob into the store; true once it is there. */
  fetch(digest: string, requestedIn?: RequestedIn): Promise<boolean>;
  peers: PeerClient;
  stallTimeoutMs: number;
  /** Whether image names are looked up in the mesh (else only digests). */
  resolveTags: boolean;
  upstream?: UpstreamSource;
  log: Logger;
}

export class TagResolver {
  constructor(private readonly deps: TagResolverDeps) {}

  async resolve(image: string): Promise<Descriptor | undefined> {
    return (await this.#inMesh(image)) ?? (await this.#upstream(image));
  }

  async #inMesh(image: string): Promise<Descriptor | undefined> {
    const { resolveTags, holders, peers, stallTimeoutMs, log } = this.deps;
    if (!resolveTags) return undefined;
    for (const peer of await holders.of(image)) {
      try {
        const path = `${IMAGES_PATH}?name=${encodeURIComponent(image)}`;
        const res = await peers.request(peer, path, { signal: AbortSignal.timeout(stallTimeoutMs) });
        const answer = await readBounded(res.body, 64 << 10);
        if (res.status !== 200) continue;
        const target = JSON.parse(answer.toString()) as Descriptor;
        if (!isDigest(target.digest) || target.size > MAX_MANIFEST_BYTES) continue;
        if (await this.deps.fetch(target.digest)) return { mediaType: target.mediaType, digest: target.digest, size: target.size };
      } catch (err) {
        log.warn({ peer: peer.id, image, err: (err as Error).message }, 'peer could not resolve tag');
      }
    }
    return undefined;
  }

  /**
   * No image record is made: containerd records the image it pulled itself, and a record here would
   * pin the tag to this digest (the store is asked first) long after the upstream has moved it.
   */
  async #upstream(image: string): Promise<Descriptor | undefined> {
    const { upstream, store } = this.deps;
    const { repo, tag } = parseImageName(image);
    if (!upstream || !tag) return undefined;
    const target = await upstream.resolveTag(repo, tag);
    if (!target || target.size > MAX_MANIFEST_BYTES) return undefined;
    if (!(await this.deps.fetch(target.digest, { repo, manifest: true }))) return undefined;
    const body = await readSmallBlob(store, target.digest);
    return body && { mediaType: mediaTypeOf(body), digest: target.digest, size: body.length };
  }
}
