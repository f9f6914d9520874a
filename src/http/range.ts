// Single byte ranges of a GET (206, or 416 when the range is outside the blob). What RFC 9110 lets a server
// ignore (another unit, several ranges, a malformed one) is ignored: the whole blob is sent, 200.
import type { ByteRange } from '../store/store.js';

export class RangeNotSatisfiableError extends Error {
  constructor(readonly size: number, readonly header: string) {
    super(`range not satisfiable: ${header.length > 80 ? `${header.slice(0, 80)}…` : header}`);
    this.name = 'RangeNotSatisfiableError';
  }
}

/** Parses `Range: bytes=a-b | a- | -n` against a blob of `size` bytes; undefined when absent or ignored. */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  const m = header === undefined ? null : /^bytes=(\d*)-(\d*)$/i.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '') || (m[1] !== '' && m[2] !== '' && Number(m[2]) < Number(m[1]))) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw new RangeNotSatisfiableError(size, header!);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) throw new RangeNotSatisfiableError(size, header!);
  return { start, end };
}
