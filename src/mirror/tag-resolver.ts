// An image name (`docker.io/library/app:1`) to the manifest it names: asked of the peers that announce
// the name (the newest push among their answers), else of the image's own registry (`--upstream`). The manifest is then fetched by digest
// and verified like any blob.
import type { Logger } from 'pino';
import { isDigest, type Descriptor } from '../oci/digest.js';
import { MAX_MANIFEST_BYTES, readBounded } from '../oci/limits.js';
import { mediaTypeOf } from '../oci/manifest.js';
import { parseImageName } from '../oci/names.js';
import { readSmallBlob } from '../oci/references.js';
import type { RequestedIn } from '../store/store.js';
import type { Store } from '../store/store.js';
import type { DataPlane } from '../dht/membership.js';
import { comparePushes, isTagPush, type TagPush } from '../oci/tag-push.js';
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

/** Once one holder has answered, the others' answers are welcome for this long. */
const ANSWER_GRACE_MS = 200;

/** A holder's answer: the manifest it names the image after, and the stamp of that push (absent: older than any). */
interface HolderAnswer {
  target: Descriptor;
  push?: TagPush;
}

function holderAnswer(value: unknown): HolderAnswer | undefined {
  const v = value as Partial<Descriptor> & { push?: unknown };
  if (typeof v?.digest !== 'string' || !isDigest(v.digest) || typeof v.mediaType !== 'string') return undefined;
  if (!Number.isSafeInteger(v.size) || v.size! < 0 || v.size! > MAX_MANIFEST_BYTES) return undefined;
  return { target: { mediaType: v.mediaType, digest: v.digest, size: v.size! }, ...(isTagPush(v.push) && { push: v.push }) };
}

export class TagResolver {
  constructor(private readonly deps: TagResolverDeps) {}

  async resolve(image: string): Promise<Descriptor | undefined> {
    return (await this.#inMesh(image)) ?? (await this.#upstream(image));
  }

  /**
   * Asks every holder at once which manifest the name is and from which push, and takes the newest push
   * among the answers (src/oci/tag-push.ts), not the first or nearest: holders that have not caught up
   * with the newest push yet must not decide what this host's clients get.
   */
  async #inMesh(image: string): Promise<Descriptor | undefined> {
    const { resolveTags, holders } = this.deps;
    if (!resolveTags) return undefined;
    const answers = await this.#answers(image, await holders.of(image));
    answers.sort((a, b) => comparePushes(b.push, a.push));
    for (const { target } of answers) {
      if (await this.deps.fetch(target.digest)) return target;
    }
    return undefined;
  }

  /** The holders' answers: all of them, or those in by ANSWER_GRACE_MS after the first (a stalled holder is not waited for). */
  async #answers(image: string, peers: DataPlane[]): Promise<HolderAnswer[]> {
    const { peers: client, stallTimeoutMs, log } = this.deps;
    const answers: HolderAnswer[] = [];
    const enough = new AbortController();
    let grace: NodeJS.Timeout | undefined;
    const signal = AbortSignal.any([enough.signal, AbortSignal.timeout(stallTimeoutMs)]);
    await Promise.all(peers.map(async (peer) => {
      try {
        const path = `${IMAGES_PATH}?name=${encodeURIComponent(image)}`;
        const res = await client.request(peer, path, { signal });
        const body = await readBounded(res.body, 64 << 10);
        if (res.status !== 200) return;
        const answer = holderAnswer(JSON.parse(body.toString()));
        if (!answer) throw new Error('the answer is not a manifest descriptor');
        answers.push(answer);
        grace ??= setTimeout(() => enough.abort(), ANSWER_GRACE_MS);
      } catch (err) {
        if (!enough.signal.aborted) log.warn({ peer: peer.id, image, err: (err as Error).message }, 'peer could not resolve tag');
      }
    }));
    clearTimeout(grace);
    return answers;
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
