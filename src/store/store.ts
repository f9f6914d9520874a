// The local store: what this host holds. One interface, three implementations
// (containerd over gRPC, an embedded filesystem store, memory for tests).
import { Readable } from 'node:stream';
import type { Descriptor } from '../oci/digest.js';

/** Where a client asked for a digest: the repository (`docker.io/library/app`), and whether as a manifest. */
export interface RequestedIn {
  repo: string;
  manifest?: boolean;
}

export interface BlobInfo {
  digest: string;
  size: number;
  labels: Record<string, string>;
}

/**
 * Label of the image records meshd makes, saying how the image came: `pushed` through the registry, or
 * `replicated` from another node. Records without it were made by the store's own clients (a pull).
 */
export const ORIGIN_LABEL = 'layermesh.origin';
export type Origin = 'pushed' | 'replicated' | 'pulled';

/** The origin of a record, by its label. */
export function originOf(record: ImageRecord): Origin {
  const label = record.labels[ORIGIN_LABEL];
  return label === 'pushed' || label === 'replicated' ? label : 'pulled';
}

/** A named image: `docker.io/library/app:1` -> the root manifest or index. */
export interface ImageRecord {
  name: string;
  target: Descriptor;
  labels: Record<string, string>;
}

/** Inclusive byte range, as in HTTP. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface BlobReader {
  /** Size of the whole blob, not of the range. */
  size: number;
  stream: Readable;
}

/**
 * An upload in progress. Bytes are appended in order; nothing becomes visible
 * as a blob until commit() has verified digest (and size, when given).
 */
export interface Upload {
  readonly id: string;
  /** Bytes received so far; after a failed append, the bytes that were kept. */
  readonly offset: number;
  /** Appends the source's bytes; each chunk is used up before the next but one is asked for, so a source may reuse buffers (Spool.lend). */
  append(source: AsyncIterable<Uint8Array>): Promise<number>;
  /** Verifies and publishes the blob; on mismatch throws DigestMismatchError/SizeMismatchError and publishes nothing. */
  commit(expected: { digest: string; size?: number }, labels?: Record<string, string>): Promise<BlobInfo>;
  /** Releases everything the upload held. Safe to call twice; what it cannot release is logged, not thrown. */
  abort(): Promise<void>;
}

export type StoreEvent =
  | { type: 'blob-added' | 'blob-removed'; digest: string }
  | { type: 'image-added' | 'image-updated' | 'image-removed'; name: string };

export interface ImageStore {
  list(): Promise<ImageRecord[]>;
  /** The record of a name; a store that reaches beyond this host (the mirror) may resolve a tag it lacks there. */
  get(name: string): Promise<ImageRecord | undefined>;
  /** Creates or updates; afterwards the store keeps everything the target references. */
  put(record: ImageRecord): Promise<void>;
  delete(name: string): Promise<boolean>;
}

export interface Store {
  readonly kind: 'containerd' | 'fs' | 'memory';
  /** What this host holds: never reaches beyond it. */
  stat(digest: string): Promise<BlobInfo | undefined>;
  /**
   * Throws NotFoundError when absent, RangeError when `range` does not lie within the blob. `requestedIn` names
   * the repository a client asked for it in: a store that reaches beyond this host (the mirror) may then bring
   * it from there, and give its bytes as they arrive.
   */
  open(digest: string, range?: ByteRange, requestedIn?: RequestedIn): Promise<BlobReader>;
  /**
   * The local file holding a blob this store has, when it keeps blobs as files this process
   * may read: the registry sends those with reused buffers (per-chunk allocations cost half the
   * throughput in GC). Undefined otherwise; says nothing about whether the blob exists.
   */
  localPath(digest: string): string | undefined;
  /**
   * A new upload. `digest`, when the caller knows what it will commit (a blob from a peer, a manifest it
   * holds): a store may then prepare for that blob (containerd: one lease for the upload and the blob).
   */
  beginUpload(digest?: string): Promise<Upload>;
  delete(digest: string): Promise<boolean>;
  blobs(): AsyncIterable<BlobInfo>;
  readonly images: ImageStore;
  /**
   * Names of the images that containers on this host were created from (what must stay); absent in
   * stores that have no containers (fs, memory).
   */
  containerImages?(): Promise<Set<string>>;
  /** A directory on the filesystem that holds the blobs, when there is one: disk watermarks measure it. */
  readonly contentDir?: string;
  /** Changes to the store, from this process or others sharing it, until the signal aborts or the store closes. */
  events(signal: AbortSignal): AsyncIterable<StoreEvent>;
  close(): Promise<void>;
}

export class NotFoundError extends Error {
  constructor(readonly what: string) {
    super(`not found: ${what}`);
    this.name = 'NotFoundError';
  }
}

export class DigestMismatchError extends Error {
  constructor(readonly expected: string, readonly actual: string) {
    super(`digest mismatch: expected ${expected}, got ${actual}`);
    this.name = 'DigestMismatchError';
  }
}

export class SizeMismatchError extends Error {
  constructor(readonly expected: number, readonly actual: number) {
    super(`size mismatch: expected ${expected} bytes, got ${actual}`);
    this.name = 'SizeMismatchError';
  }
}

/** The disk holding the store is full: the upload is released and the client told so (HTTP 507). */
export class StoreFullError extends Error {
  constructor(readonly what: string, options?: { cause?: unknown }) {
    super(`no space left on the store's disk while ${what}`, options);
    this.name = 'StoreFullError';
  }
}

/** The store does not answer now (its daemon stopped or restarting): the client is told to try again (HTTP 503). */
export class StoreUnavailableError extends Error {
  /** A containerd restart takes a few seconds. */
  readonly retryAfterSeconds = 5;

  constructor(readonly what: string, options?: { cause?: unknown }) {
    super(`the store did not answer while ${what}; try again`, options);
    this.name = 'StoreUnavailableError';
  }
}

/** The store takes no more of this now, too much of it being under way: the client is told to slow down (HTTP 429). */
export class StoreBusyError extends Error {
  readonly retryAfterSeconds = 1;

  constructor(message: string) {
    super(message);
    this.name = 'StoreBusyError';
  }
}

/** An upload that was ended (committed, aborted, expired) while a request still used it. */
export class UploadClosedError extends Error {
  constructor(readonly id: string) {
    super(`upload ${id} has ended`);
    this.name = 'UploadClosedError';
  }
}

/** The check behind Store.open's RangeError, shared so that every store draws the line alike. */
export function checkRange(digest: string, size: number, range: ByteRange | undefined): void {
  if (!range) return;
  const { start, end } = range;
  if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end && end < size)) {
    throw new RangeError(`range ${start}-${end} is outside ${digest} (${size} bytes)`);
  }
}

/** ENOSPC and EDQUOT as a StoreFullError; anything else unchanged. */
export function asStoreFull(err: unknown, what: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' ? new StoreFullError(what, { cause: err }) : err;
}

/** Stores bytes held whole in memory (manifests, configs) as the blob `digest`, verified on commit. */
export async function putBlob(store: Store, bytes: Buffer, digest: string, labels: Record<string, string> = {}): Promise<void> {
  const upload = await store.beginUpload(digest);
  try {
    await upload.append(Readable.from([bytes]));
    await upload.commit({ digest, size: bytes.length }, labels);
  } catch (err) {
    await upload.abort();
    throw err;
  }
}
