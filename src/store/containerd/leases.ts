// containerd leases: what keeps uploads and not-yet-tagged blobs from being garbage collected.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { digestHex, isDigest } from '../../oci/digest.js';
import { Code, hasCode, unlessNotFound, type ContainerdClient } from './client.js';

const UPLOAD_LEASE_PREFIX = 'layermesh-upload-';
const BLOB_LEASE_PREFIX = 'layermesh-blob-';
/** Backstop: if this process dies before releasing a lease, containerd's GC drops it after a day. */
const LEASE_TTL_MS = 24 * 3600_000;

const BLOB_LEASE = new RegExp(`^${BLOB_LEASE_PREFIX}([0-9a-f]{64})(?:-[0-9a-f]+)?$`);

/**
 * A new lease id: with a digest, a lease of that blob (`layermesh-blob-<hex>-<random>`: its own, so that uploads
 * of one blob share no ingest and a failed one drops its lease alone), which holds the blob until a tag does;
 * without, an upload's whose digest comes with its last request.
 */
export function newLeaseId(digest?: string): string {
  const unique = randomBytes(12).toString('hex');
  return digest && isDigest(digest) ? `${BLOB_LEASE_PREFIX}${digestHex(digest)}-${unique}` : `${UPLOAD_LEASE_PREFIX}${unique}`;
}

/** The blob a blob lease holds (also the shared `layermesh-blob-<hex>` of earlier versions). */
export function leasedBlob(id: string): string | undefined {
  const hex = BLOB_LEASE.exec(id)?.[1];
  return hex && `sha256:${hex}`;
}

function gcExpireLabels(): Record<string, string> {
  // Go parses RFC 3339; keep it to whole seconds.
  const expire = new Date(Date.now() + LEASE_TTL_MS).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return { 'containerd.io/gc.expire': expire };
}

/** A new lease, which containerd drops after a day if nobody releases it. */
export async function createLease(client: ContainerdClient, id: string): Promise<void> {
  await client.unary('leases', 'Create', { id, labels: gcExpireLabels() }, id);
}

/**
 * Puts a content digest under an existing lease. containerd (1.6 too) records it even when no such blob
 * exists yet, and then holds the blob from the moment it does.
 */
export async function leaseContent(client: ContainerdClient, id: string, digest: string): Promise<void> {
  await client.unary('leases', 'AddResource', { id, resource: { id: digest, type: 'content' } }, `${id} ${digest}`);
}

/** Deletes a lease; absent is fine (already released). */
export async function deleteLease(client: ContainerdClient, id: string, logger: Logger): Promise<void> {
  try {
    await client.unary('leases', 'Delete', { id }, id);
  } catch (err) {
    if (!hasCode(err, Code.NOT_FOUND)) throw err;
    logger.debug({ lease: id }, 'containerd lease already gone');
  }
}

/**
 * Lease deletions nobody needs to wait for (a lease made redundant, each deletion a containerd transaction):
 * failures are logged, and `settled()` waits for those under way (the store's close does).
 */
export class LaterReleases {
  readonly #pending = new Set<Promise<void>>();

  constructor(private readonly logger: Logger) {}

  add(release: Promise<void>, context: Record<string, unknown>): void {
    const tracked: Promise<void> = release
      .catch((err) => this.logger.warn({ err, ...context }, 'could not release a lease; containerd drops it when it expires'))
      .finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }

  async settled(): Promise<void> {
    await Promise.all(this.#pending);
  }
}

/** The ids of the namespace's leases. */
async function leaseIds(client: ContainerdClient): Promise<string[]> {
  return (await client.unary<{ leases: { id: string }[] }>('leases', 'List', { filters: [] }, '')).leases.map((l) => l.id);
}

/**
 * Deletes the blob leases of the given blobs, all at once (each is a transaction in containerd), but those of
 * uploads still `writing`: a push of the same image alongside would lose its ingest's lease mid-write.
 */
export async function releaseBlobs(client: ContainerdClient, digests: Set<string>, writing: ReadonlySet<string>, logger: Logger): Promise<void> {
  const ids = (await leaseIds(client)).filter((id) => digests.has(leasedBlob(id) ?? '') && !writing.has(id));
  await Promise.all(ids.map((id) => deleteLease(client, id, logger)));
}

/**
 * What uploads of an earlier meshd left in this namespace (killed, or its host lost power): their ingests, partial
 * bytes on disk, and their leases, which would keep both for a day. Called by the daemon as it opens its store,
 * when none of its uploads exists yet. Leases of committed blobs stay: they hold blobs a push may still name.
 */
export async function abortLeftUploads(client: ContainerdClient, logger: Logger): Promise<void> {
  const { statuses } = await client.unary<{ statuses: { ref: string; offset: string | number }[] }>('content', 'ListStatuses', { filters: [] }, '');
  const left = statuses.filter((s) => s.ref.startsWith(UPLOAD_LEASE_PREFIX) || s.ref.startsWith(BLOB_LEASE_PREFIX));
  await Promise.all(left.map((s) => unlessNotFound(client.unary('content', 'Abort', { ref: s.ref }, s.ref))));
  const ingests = new Set(left.map((s) => s.ref));
  const gone = (await leaseIds(client)).filter((id) => id.startsWith(UPLOAD_LEASE_PREFIX) || ingests.has(id));
  await Promise.all(gone.map((id) => deleteLease(client, id, logger)));
  if (left.length + gone.length > 0) {
    logger.info({ ingests: left.length, bytes: left.reduce((n, s) => n + Number(s.offset), 0), leases: gone.length }, 'removed what uploads of an earlier run left in containerd');
  }
}
