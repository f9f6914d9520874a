// An upload chunk's Content-Range (a PATCH or PUT of the push API).
import type { ByteRange } from '../store/store.js';
import { RegistryError } from './errors.js';

/** Parses an upload chunk's `Content-Range: a-b` (also accepting a `bytes ` prefix). */
export function parseContentRange(header: string | undefined): ByteRange | undefined {
  if (!header) return undefined;
  const m = /^(?:bytes )?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!m || Number(m[1]) > Number(m[2])) {
    throw new RegistryError(416, 'BLOB_UPLOAD_INVALID', `invalid Content-Range: ${header}`);
  }
  return { start: Number(m[1]), end: Number(m[2]) };
}
