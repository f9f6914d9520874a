// What every route handler gets.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Descriptor } from '../oci/digest.js';
import type { Store } from '../store/store.js';
import type { KeyedQueue } from '../util/keyed-queue.js';
import type { UploadSessions } from './upload-sessions.js';

export interface RegistryDeps {
  store: Store;
  uploads: UploadSessions;
  log: Logger;
  /** Largest manifest accepted, in bytes. */
  maxManifestBytes: number;
  /** Told of every push by tag (replication listens here). */
  pushes?: PushListener;
}

/** What hears of pushes, as distribution's notification listeners do. */
export interface PushListener {
  /** Checks a push's options before anything is stored; throws with the reason when they are invalid. */
  check(options: PushOptions): void;
  /** Labels for the image record of a push by tag, asked just before it is stored (the mesh stamps the push there). */
  labels(image: string, target: Descriptor, options: PushOptions): Record<string, string>;
  /**
   * A manifest was stored under a tag, with the image name as stored and the labels its record got: called before
   * the next push of that name is asked for its labels.
   */
  pushed(image: string, digest: string, options: PushOptions, labels: Record<string, string>): void;
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
  /** Pushes of one tag are stamped and stored one after the other: the newest stamp is the record's. */
  tagWrites: KeyedQueue;
}

export type Handler = (ctx: RouteContext) => Promise<unknown>;

/**
 * The request body as a byte stream (the registry registers no body parsers). A handler that stops
 * reading early leaves the rest unread rather than destroyed, so the error can still reach the client.
 */
export function bodyOf(ctx: RouteContext): AsyncIterable<Uint8Array> {
  return ctx.req.raw.iterator({ destroyOnReturn: false });
}
