// What every route handler gets.
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { Descriptor } from '../oci/digest.js';
import type { UploadSessions } from './upload-sessions.js';

/** Where a client asked for a digest: the repository (`docker.io/library/app`), and whether as a manifest. */
export interface Origin {
  repo: string;
  manifest?: boolean;
}

/**
 * Fills the store from the mesh (and, with `--upstream`, from the image's own registry). Every call
 * resolves false/undefined quickly when nobody has it. The origin says where the upstream is asked.
 */
export interface MirrorSource {
  /**
   * Fetches a blob into the store (or joins the fetch under way) and gives its bytes as they arrive,
   * the last ones only once verified: undefined when nobody holds it.
   */
  streamBlob(digest: string, origin?: Origin): Promise<{ size: number; stream: Readable } | undefined>;
  /** Fetches a blob (or manifest) by digest into the store, verified; true when the store now holds it. */
  fetchBlob(digest: string, options?: { origin?: Origin }): Promise<boolean>;
  /** The manifest a peer holds under this image name (`docker.io/library/app:1`), fetched into the store. */
  resolveTag(image: string): Promise<Descriptor | undefined>;
}

export interface RegistryDeps {
  store: Store;
  uploads: UploadSessions;
  log: Logger;
  /** Largest manifest accepted, in bytes. */
  maxManifestBytes: number;
  /** What the store lacks, fetched from peers; absent when the registry serves only what the host holds. */
  mirror?: MirrorSource;
  /** Called after a manifest is stored under a tag, with the image name as stored. */
  onPushed?: (image: string, digest: string, options: PushOptions) => void;
  /** Checks a push's options before anything is stored; throws with the reason when they are invalid. */
  checkPushOptions?: (options: PushOptions) => void;
}

/** Header of a manifest PUT: how the mesh replicates this push, replacing each node's own policy. */
export const REPLICATE_HEADER = 'x-layermesh-replicate';

export interface PushOptions {
  replicate?: string;
}

export interface RouteContext extends RegistryDeps {
  req: FastifyRequest;
  reply: FastifyReply;
  /** The repository name as the client wrote it. */
  name: string;
  /** The store's name for it: `docker.io/library/app`. */
  repo: string;
  /** The reference, digest or upload id that follows the route's keyword. */
  ref: string;
  query: Record<string, string | undefined>;
}

export type Handler = (ctx: RouteContext) => Promise<unknown>;

/**
 * The request body as a byte stream (the registry registers no body parsers). A handler that stops
 * reading early leaves the rest unread rather than destroyed, so the error can still reach the client.
 */
export function bodyOf(ctx: RouteContext): AsyncIterable<Uint8Array> {
  return ctx.req.raw.iterator({ destroyOnReturn: false });
}
