// containerd leases: what keeps uploads and not-yet-tagged blobs from being garbage collected.
import type { Logger } from 'pino';
import { digestHex } from '../../oci/digest.js';
import { Code, hasCode, type ContainerdClient } from './client.js';

export const UPLOAD_LEASE_PREFIX = 'layermesh-upload-';
export const BLOB_LEASE_PREFIX = 'layermesh-blob-';
/** Backstop: if this process dies before releasing a lease, containerd's GC drops it after a day. */
const LEASE_TTL_MS = 24 * 3600_000;

export const blobLeaseId = (digest: string): string => `${BLOB_LEASE_PREFIX}${digestHex(digest)}`;

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

export async function listLeaseIds(client: ContainerdClient, prefix: string): Promise<string[]> {
  const res = await client.unary<{ leases: { id: string }[] }>('leases', 'List', { filters: [] }, '');
  return res.leases.map((l) => l.id).filter((id) => id.startsWith(prefix));
}
