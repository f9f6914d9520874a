// Content addresses: what a digest is, and the descriptor that names a blob by one.
import { createHash } from 'node:crypto';

/** An OCI descriptor, as found in manifests and image records. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** Only sha256 is accepted: it is what containerd and every registry client use. */
export function isDigest(value: string): boolean {
  return DIGEST.test(value);
}

/** The digest of bytes held whole in memory (manifests, configs). */
export function digestOf(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function digestHex(digest: string): string {
  if (!isDigest(digest)) throw new Error(`not a sha256 digest: ${digest}`);
  return digest.slice('sha256:'.length);
}
