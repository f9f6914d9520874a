// Requests to other members' data planes, signed with the membership proof. node:http with kept-alive
// connections: for bulk bytes it costs about half the CPU of fetch (undici) on this kind of machine.
import { Agent, request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { AUTH_HEADER, proof } from './peer-auth.js';

const agent = new Agent({ keepAlive: true, maxSockets: 32 });

/**
 * Request header of a replicating (patient) fetch, carrying the requester's peer id: a holder already
 * sending a large blob may answer 503 instead, naming in TRY_HEADER the peers it is sending it to
 * (they hold the first part already and serve it as it arrives).
 */
export const PATIENT_HEADER = 'x-layermesh-patient';
export const TRY_HEADER = 'x-layermesh-try';
/**
 * A blob at least this large is sent to one patient peer at a time (the others are redirected to the
 * copies it is feeding) and replicated along a pipeline of nodes; smaller ones (configs, manifests) are
 * not worth queueing. Measured: at 4 MiB, the 2 MiB layers sent straight to every node made the pushed
 * node's uplink the bottleneck of the whole fan-out.
 */
export const PIPELINE_MIN_BYTES = 256 << 10;
/**
 * A patient peer asking for a blob this node does not have yet is the next in a replication pipeline,
 * asking before this node's own copy begins to arrive (which waits for the node before it, and so on):
 * it is kept waiting this long before it is sent elsewhere.
 */
export const AWAIT_COPY_MS = 10_000;
/** Header of an answer from a blob still arriving: how many bytes the holder has so far. */
export const PARTIAL_HEADER = 'x-layermesh-partial';

/** A member's data plane. */
export interface PeerEndpoint {
  id: string;
  /** Base URL of the peer's data plane. */
  url: string;
  rttMs?: number;
}

export interface PeerResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
}

export interface PeerRequest {
  method?: 'GET' | 'HEAD' | 'POST';
  /** A JSON body (POST). */
  body?: string;
  /** First byte wanted (a `Range: bytes=<from>-` request when above 0). */
  from?: number;
  headers?: Record<string, string>;
  signal: AbortSignal;
}

export function peerRequest(baseUrl: string, path: string, key: Buffer, init: PeerRequest): Promise<PeerResponse> {
  const method = init.method ?? 'GET';
  const headers: Record<string, string> = { ...init.headers, [AUTH_HEADER]: proof(key, method, path) };
  if (init.from) headers.range = `bytes=${init.from}-`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = request(`${baseUrl}${path}`, { method, headers, agent, signal: init.signal }, (res) =>
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }));
    req.once('error', reject);
    req.end(init.body);
  });
}
