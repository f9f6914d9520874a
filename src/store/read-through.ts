// What fills the local store from elsewhere when it lacks something: the mesh, and with --upstream the
// image's own registry. The registry reads through it; the mirror implements it.
import type { Readable } from 'node:stream';
import type { Descriptor } from '../oci/digest.js';

/** Where a client asked for a digest: the repository (`docker.io/library/app`), and whether as a manifest. */
export interface RequestedIn {
  repo: string;
  manifest?: boolean;
}

/** Every call resolves false/undefined quickly when nobody has it. `requestedIn` says where the upstream is asked. */
export interface ReadThrough {
  /**
   * Fetches a blob into the store (or joins the fetch under way) and gives its bytes as they arrive,
   * the last ones only once verified: undefined when nobody holds it.
   */
  stream(digest: string, requestedIn?: RequestedIn): Promise<{ size: number; stream: Readable } | undefined>;
  /** Fetches a blob (or manifest) by digest into the store, verified: `stored` is true once the store holds it. */
  fetch(digest: string, options?: { requestedIn?: RequestedIn }): { stored: Promise<boolean> };
  /** The manifest a peer holds under this image name (`docker.io/library/app:1`), fetched into the store. */
  resolveTag(image: string): Promise<Descriptor | undefined>;
}
