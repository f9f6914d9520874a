// Single byte ranges, for GET with Range (206/416) and upload PATCH with Content-Range.
import type { ByteRange } from '../store/store.js';
import { RegistryError } from './errors.js';

const rangeNotSatisfiable = (size: number, header: string) =>
  new RegistryError(416, 'RANGE_INVALID', `range not satisfiable: ${header}`, undefined, { 'content-range': `bytes */${size}` });

/** Parses `Range: bytes=a-b | a- | -n` against a blob of `size` bytes; undefined when absent. */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) throw rangeNotSatisfiable(size, header);
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw rangeNotSatisfiable(size, header);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) throw rangeNotSatisfiable(size, header);
  return { start, end };
}

/** Parses an upload chunk's `Content-Range: a-b` (also accepting a `bytes ` prefix). */
export function parseContentRange(header: string | undefined): ByteRange | undefined {
  if (!header) return undefined;
  const m = /^(?:bytes )?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!m || Number(m[1]) > Number(m[2])) {
    throw new RegistryError(416, 'BLOB_UPLOAD_INVALID', `invalid Content-Range: ${header}`);
  }
  return { start: Number(m[1]), end: Number(m[2]) };
}
