// What a peer's request to the data plane asks for, read and checked before anything is done for it.
import { isDigest } from '../oci/digest.js';
import { MAX_LANES, MAX_SEQUENCE_BLOBS, MAX_SEQUENCE_BYTES, type Piece, type SequenceLevel } from './peer-protocol.js';

export const badRequest = (message: string) => ({ errors: [{ code: 'DIGEST_INVALID', message }] });

/** The pieces of blobs a sequence request asks for (whole blobs unless a range is given), or why the request is refused. */
export function sequenceAsked(body: unknown): { pieces: Piece[]; level?: SequenceLevel } | string {
  const { blobs, level } = (body ?? {}) as { blobs?: unknown; level?: Partial<SequenceLevel> };
  if (level !== undefined && !isLevel(level)) return `level must be {"key": a sha256 digest, "lane", "lanes"}, 0 <= lane < lanes <= ${MAX_LANES}`;
  if (!Array.isArray(blobs) || blobs.length === 0) return 'expected {"blobs": [{"digest", "size", "offset"?, "length"?}, ...]}';
  if (blobs.length > MAX_SEQUENCE_BLOBS) return `a sequence asks for at most ${MAX_SEQUENCE_BLOBS} blobs`;
  const asked = new Map<string, Piece>();
  let bytes = 0;
  const count = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
  for (const entry of blobs as unknown[]) {
    const { digest, size, offset = 0, length = size } = (entry ?? {}) as Partial<Piece>;
    if (typeof digest !== 'string' || !isDigest(digest) || !count(size)) return 'every entry needs a sha256 digest and a size';
    if (!count(offset) || !count(length) || offset + length > size) return `the range asked of ${digest} is not within its size`;
    if (asked.has(digest)) return `${digest} is asked for twice`;
    bytes += length;
    asked.set(digest, { digest, size, offset, length });
  }
  if (bytes > MAX_SEQUENCE_BYTES) return `a sequence asks for at most ${MAX_SEQUENCE_BYTES} bytes`;
  return { pieces: [...asked.values()], level };
}

function isLevel(level: Partial<SequenceLevel> | null): level is SequenceLevel {
  const { key, lane, lanes } = level ?? {};
  return typeof key === 'string' && isDigest(key) && Number.isSafeInteger(lane) && Number.isSafeInteger(lanes) && lane! >= 0 && lane! < lanes! && lanes! <= MAX_LANES;
}

/** A request body as JSON; undefined when it is none or not JSON. */
export function jsonOf(body: unknown): unknown {
  if (!Buffer.isBuffer(body)) return undefined;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}
