// containerd leases: what keeps uploads and not-yet-tagged blobs from being garbage collected.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { digestHex, isDigest } from '../../oci/digest.js';
import { Code, hasCode, type ContainerdClient } from './client.js';

const UPLOAD_LEASE_PREFIX = 'layermesh-upload-';
const BLOB_LEASE_PREFIX = 'layermesh-blob-';
/** Backstop: if this process dies before releasing a lease, containerd's GC drops it after a day. */
const LEASE_TTL_MS = 24 * 3600_000;

const BLOB_LEASE = new RegExp(`^${BLOB_LEASE_PREFIX}([0-9a-f]{64})(?:-[0-9a-f]+)?$`);

export const blobLeaseId = (digest: string): string => `${BLOB_LEASE_PREFIX}${digestHex(digest)}`;

/**
 * The lease an upload writes under: when the caller names the digest it will commit, a lease of that blob (its
 * own, so that uploads of one blob do not share an ingest), which then holds the blob until a tag does.
 */
export function uploadLeaseId(digest?: string): string {
  const unique = randomBytes(12).toString('hex');
  return digest && isDigest(digest) ? `${blobLeaseId(digest)}-${unique}` : `${UPLOAD_LEASE_PREFIX}${unique}`;
}

/** The blob a blob lease holds (blobLeaseId, or an upload's of a named digest). */
export function leasedBlob(id: string): string | undefined {
  const hex = BLOB_LEASE.exec(id)?.[1];
  return hex && `sha256:${hex}`;
}

export function gcExpireLabels(): Record<string, string> {
  // Go parses RFC 3339; keep it to whole seconds.
  const expire = new Date(Date.now() + LEASE_TTL_MS).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return { 'containerd.io/gc.expire': expire };
}

/** Creates the lease; an existing one with that id is fine (its expiry is not extended: 1.6 cannot update leases). */
export async function ensureLease(client: ContainerdClient, id: string): Promise<void> {
  try {
    await client.unary('leases', 'Create', { id, labels: gcExpireLabels() }, id);
  } catch (err) {
    if (!hasCode(err, Code.ALREADY_EXISTS)) throw err;
  }
}

/**
 * Puts a content digest under an existing lease. containerd (1.6 too) records it even when no such blob
 * exists yet, and then holds the blob from the moment it does.
 */
export async function leaseContent(client: ContainerdClient, id: string, digest: string): Promise<void> {
  await client.unary('leases', 'AddResource', { id, resource: { id: digest, type: 'content' } }, `${id} ${digest}`);
}

/** Moves the blob under its own lease `layermesh-blob-<hex>`, which images.put releases once a tag holds it. */
export async function protectBlob(client: ContainerdClient, digest: string): Promise<void> {
  const id = blobLeaseId(digest);
  await ensureLease(client, id);
  await leaseContent(client, id, digest);
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

/** Deletes the blob leases of the given blobs, all at once (each is a transaction in containerd). */
export async function releaseBlobs(client: ContainerdClient, digests: Set<string>, logger: Logger): Promise<void> {
  const res = await client.unary<{ leases: { id: string }[] }>('leases', 'List', { filters: [] }, '');
  const ids = res.leases.map((l) => l.id).filter((id) => digests.has(leasedBlob(id) ?? ''));
  await Promise.all(ids.map((id) => deleteLease(client, id, logger)));
}
