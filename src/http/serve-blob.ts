// Blobs over HTTP, as the registry and the peer data plane both answer them: GET or HEAD, whole or one range.
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { NotFoundError, type BlobReader, type ByteRange, type RequestedIn, type Store } from '../store/store.js';
import { parseRange } from './range.js';
import { openBlobFile, paced, sendFileRange, type Pace } from './send-file.js';

/** Where a blob served came from: this host's store, or the mesh (it arrived for this request). */
export type ServedFrom = 'local' | 'mesh';

export interface ServeOptions {
  /** The repository a client asked in: a store that reaches beyond this host (the mirror) may bring what it lacks. */
  requestedIn?: RequestedIn;
  /** Waits before each chunk of the body is sent (a bandwidth limit). */
  pace?: Pace;
  /** Told, when a GET's response is over, how many body bytes it carried (see countSent). */
  onSent?: (bytes: number, from: ServedFrom) => void;
}

/**
 * Calls `onSent` once the response is over with the body bytes written to it. Not on 'finish': a client that
 * hangs up as soon as it has the last byte (curl does) closes the socket before the body's stream has ended,
 * and 'finish' then never comes.
 */
export function countSent(res: ServerResponse, onSent: (bytes: number) => void): void {
  let bytes = 0;
  const write = res.write;
  res.write = function (this: ServerResponse, chunk: Uint8Array | string, ...rest: unknown[]) {
    bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as ServerResponse['write'];
  res.once('close', () => onSent(bytes));
}

/**
 * Answers GET or HEAD of a blob from the store, with single ranges; false when the store does not have
 * it, else where it came from. Shared by the registry and the peer data plane. Handlers return the reply when this is true: fastify
 * ends an async handler's reply itself, empty, when it resolves to undefined after an await, even with
 * a stream already given to send().
 */
export async function serveBlob(
  store: Store, digest: string, req: FastifyRequest, reply: FastifyReply, log: Logger, { requestedIn, pace, onSent }: ServeOptions = {},
): Promise<ServedFrom | false> {
  const count = (from: ServedFrom) => {
    if (onSent && req.method === 'GET') countSent(reply.raw, (bytes) => onSent(bytes, from));
  };
  const info = await store.stat(digest);
  if (!info) return requestedIn && (await serveArriving(store, digest, req, reply, requestedIn, () => count('mesh'))) ? 'mesh' : false;
  const range = requestedRange(req, digest, info.size);
  blobHeaders(reply, digest, info.size, range);
  if (req.method === 'HEAD') {
    reply.send();
    return 'local';
  }
  const path = store.localPath(digest);
  if (path) {
    const handle = await openBlobFile(path);
    if (!handle) return false; // deleted since stat
    count('local');
    await sendFileRange(reply, handle, range?.start ?? 0, range?.end ?? info.size - 1, log, pace);
    return 'local';
  }
  try {
    const { stream } = await store.open(digest, range);
    count('local');
    reply.send(paced(stream, pace));
    return 'local';
  } catch (err) {
    if (err instanceof NotFoundError) return false; // deleted since stat
    throw err;
  }
}

/**
 * A blob this host lacks, as the store opens it: a whole GET is sent as it arrives (its last bytes only once
 * verified); HEAD and ranges are answered once the blob is here and verified.
 */
async function serveArriving(
  store: Store, digest: string, req: FastifyRequest, reply: FastifyReply, requestedIn: RequestedIn, count: () => void,
): Promise<boolean> {
  const whole = await openIfPresent(store, digest, undefined, requestedIn);
  if (!whole) return false;
  let range: ByteRange | undefined;
  try {
    range = requestedRange(req, digest, whole.size);
  } catch (err) {
    whole.stream.destroy();
    throw err;
  }
  if (req.method === 'GET' && !range) {
    blobHeaders(reply, digest, whole.size, range);
    count();
    reply.send(whole.stream);
    return true;
  }
  whole.stream.destroy();
  const held = await openIfPresent(store, digest, range ?? (whole.size > 0 ? { start: 0, end: 0 } : undefined), requestedIn);
  if (!held) return false;
  if (req.method === 'HEAD') held.stream.destroy();
  blobHeaders(reply, digest, whole.size, range);
  count();
  reply.send(req.method === 'HEAD' ? undefined : held.stream);
  return true;
}

async function openIfPresent(store: Store, digest: string, range: ByteRange | undefined, requestedIn: RequestedIn): Promise<BlobReader | undefined> {
  try {
    return await store.open(digest, range, requestedIn);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/**
 * The range a request asks for: only a GET's (RFC 9110: a HEAD answers as the whole GET would), and only while an
 * If-Range names this blob's ETag (a validator of another representation, or a date, asks for the whole).
 */
export function requestedRange(req: FastifyRequest, digest: string, size: number): ByteRange | undefined {
  const ifRange = req.headers['if-range'];
  if (req.method !== 'GET' || (ifRange !== undefined && ifRange !== `"${digest}"`)) return undefined;
  return parseRange(req.headers.range, size);
}

/** Sets the headers of a blob answer: 206 and Content-Range for the range asked for (requestedRange). */
export function blobHeaders(reply: FastifyReply, digest: string, size: number, range: ByteRange | undefined): void {
  reply
    .header('docker-content-digest', digest)
    .header('accept-ranges', 'bytes')
    .header('content-type', 'application/octet-stream')
    .header('etag', `"${digest}"`);
  if (range) reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`);
  reply.header('content-length', range ? range.end - range.start + 1 : size);
}
