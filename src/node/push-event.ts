// The gossip event for a push to this node. It carries the image's small blobs (manifests, configs)
// inline: every taker needs them before it can ask for a single layer, and 7 takers asking the origin
// for them at once cost a round of requests on the busiest node at the busiest moment (half a second
// on an 8-host fleet). Takers verify each against its digest, like bytes from any peer. It also names the
// takers this node expects, in the image's order, so that all of them plan alike whatever each knows of the mesh.
import type { Logger } from 'pino';
import type { MeshEvent, Router } from '../dht/router.js';
import type { PushListener } from '../registry/context.js';
import type { Store } from '../store/store.js';
import { parseReplicationPolicy } from '../oci/replication-policy.js';
import { takerOrder, takerTag } from './replication-plan.js';
import { children, isIndexMediaType, MANIFEST_MEDIA_TYPES, parseManifest } from '../oci/manifest.js';
import { readSmallBlob } from '../oci/references.js';
import { PUSH_REPLICATE_LABEL, pushLabels, pushOf } from '../oci/tag-push.js';
import type { NewestPushes } from './newest-pushes.js';
import type { TakersOf } from './push-follower.js';

/** Inlined bytes and taker tags per event: well inside the events' size limit (mesh-events.ts). */
const EVENT_BUDGET = 48 << 10;
/** Tags beyond this many (11 bytes each), or none, leave the takers to plan from their own views. */
const MAX_TAKER_TAGS = 3000;

/** The event for a push of `event.image` that `takers` (peer ids) are to copy. */
export async function pushEvent(store: Store, event: Omit<MeshEvent, 'type' | 'inline' | 'takers'>, takers: string[], log: Logger): Promise<MeshEvent> {
  const tags = takers.length > 0 && takers.length <= MAX_TAKER_TAGS ? takerOrder(event.digest, takers).map(takerTag) : undefined;
  const inline: Record<string, string> = {};
  let room = EVENT_BUDGET - (tags ? JSON.stringify(tags).length : 0);
  /** The blob's bytes (read from the store unless given), inlined, if they fit in what is left of the budget. */
  const add = async (digest: string, size: number, known?: Buffer): Promise<Buffer | undefined> => {
    const encoded = Math.ceil(size / 3) * 4;
    if (encoded > room || digest in inline) return undefined;
    const bytes = known ?? (await readSmallBlob(store, digest));
    if (bytes?.length !== size) return undefined;
    room -= encoded;
    inline[digest] = bytes.toString('base64');
    return bytes;
  };
  /** The root manifest, an index's platform manifests, then the smallest of the other blobs while there is room. */
  const gather = async () => {
    const root = await readSmallBlob(store, event.digest);
    if (!root || !(await add(event.digest, root.length, root))) return;
    const manifests = [parseManifest(root)];
    if (isIndexMediaType(manifests[0].mediaType)) {
      for (const child of manifests[0].manifests) {
        const bytes = await add(child.digest, child.size);
        if (bytes) manifests.push(parseManifest(bytes, child.mediaType));
      }
    }
    const small = manifests.flatMap(children).filter((d) => !MANIFEST_MEDIA_TYPES.includes(d.mediaType)).sort((a, b) => a.size - b.size);
    for (const blob of small) if (!(await add(blob.digest, blob.size)) && !(blob.digest in inline)) break;
  };
  // The push goes out all the same: takers fetch what is not inlined from this node, as they do what does not fit.
  await gather().catch((err: Error) =>
    log.warn({ image: event.image, err: err.message }, "could not read the push's small blobs to send them along; gossiping it without"));
  return { type: 'image-pushed', ...event, ...(Object.keys(inline).length > 0 && { inline }), ...(tags && { takers: tags }) };
}

/**
 * The registry's push listener on a mesh node: checks a push's replication policy, stamps each push with a
 * clock newer than any push of its name known here (on its image record too), and gossips it with the takers
 * `takersOf` finds for it.
 */
export function pushGossip(store: Store, router: Pick<Router, 'id' | 'publish'>, pushes: NewestPushes, takersOf: TakersOf, log: Logger): PushListener {
  return {
    check: ({ replicate }) => void (replicate !== undefined && parseReplicationPolicy(replicate)),
    // Known as the newest push of its name only once stored: a record that could not be written (a full disk) must
    // not make this node ignore the pushes of that name from others that are older than it.
    labels: (image, target, { replicate }) => ({
      ...pushLabels(pushes.next(image, target.digest)),
      ...(replicate !== undefined && { [PUSH_REPLICATE_LABEL]: replicate }),
    }),
    pushed: (image, digest, { replicate }, labels) => {
      const clock = pushOf(labels)?.clock;
      if (clock === undefined) return void log.error({ image, digest }, 'a push without its stamp is not gossiped');
      pushes.observe(image, { clock, node: router.id, digest });
      pushEvent(store, { image, digest, node: router.id, clock, ...(replicate !== undefined && { replicate }) }, takersOf(image, router.id, replicate), log)
        .then((event) => router.publish(event))
        .catch((err) => log.warn({ err, image }, 'could not gossip the push'));
    },
  };
}
