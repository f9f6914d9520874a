// The peer data plane: what this host holds locally, for other members, over HTTP: blobs in the store,
// and blobs still arriving here (from their spool, as far as they have arrived: that is how a fan-out
// becomes a tree instead of every node pulling from the first). It never asks another peer (no loops by
// construction) and answers only requests that prove membership.
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { isDigest, type Store } from '../containerd/store.js';
import { blobHeaders, serveBlob } from '../registry/blobs.js';
import { AUTH_HEADER, verifyProof } from './peer-auth.js';
import { PATIENT_HEADER } from './mirror.js';
import type { Spools } from './spools.js';

const notFound = (what: string) => ({ errors: [{ code: 'BLOB_UNKNOWN', message: `${what} not held here` }] });

/** Header of an answer from a blob still arriving: how many bytes this node has so far. */
export const PARTIAL_HEADER = 'x-layermesh-partial';
/**
 * A blob at least this large is sent to one patient (replicating) peer at a time: the others are told
 * to come back, and find the copies that are arriving at the first one meanwhile. Local pulls are
 * never refused; small blobs cost too little to queue for.
 */
const ONE_AT_A_TIME_BYTES = 4 << 20;

export function createPeerServer(opts: { store: Store; spools: Spools; key: Buffer; log: Logger }) {
  const { store, spools, key, log } = opts;
  const app = Fastify({ return503OnClosing: true });
  const sending = new Map<string, number>();
  const busy = (digest: string, size: number, req: FastifyRequest) =>
    req.method === 'GET' && req.headers[PATIENT_HEADER] !== undefined && size >= ONE_AT_A_TIME_BYTES && (sending.get(digest) ?? 0) > 0;
  const count = (digest: string, reply: FastifyReply) => {
    sending.set(digest, (sending.get(digest) ?? 0) + 1);
    reply.raw.once('close', () => {
      const left = (sending.get(digest) ?? 1) - 1;
      if (left > 0) sending.set(digest, left);
      else sending.delete(digest);
    });
  };

  app.addHook('onRequest', async (req, reply) => {
    if (!verifyProof(key, req.method, req.url, req.headers[AUTH_HEADER] as string | undefined)) {
      log.warn({ method: req.method, url: req.url, from: req.ip }, 'peer request without a valid membership proof');
      return reply.code(401).send({ errors: [{ code: 'UNAUTHORIZED', message: 'not a member of this mesh' }] });
    }
  });

  app.route({
    method: ['GET', 'HEAD'],
    url: '/peer/v1/blobs/:digest',
    handler: async (req, reply) => {
      const { digest } = req.params as { digest: string };
      if (!isDigest(digest)) return reply.code(404).send(notFound(digest));
      const spool = spools.get(digest);
      const size = (await store.stat(digest))?.size ?? spool?.size;
      if (size === undefined) return reply.code(404).send(notFound(digest));
      if (busy(digest, size, req)) {
        return reply.code(503).header('retry-after', '1').send({ errors: [{ code: 'TOOMANYREQUESTS', message: `already sending ${digest}` }] });
      }
      if (req.method === 'GET') count(digest, reply);
      if (await serveBlob(store, digest, req, reply, log)) return;
      if (spool?.size === undefined) return reply.code(404).send(notFound(digest));
      const range = blobHeaders(req, reply, digest, spool.size);
      reply.header(PARTIAL_HEADER, spool.written);
      return reply.send(req.method === 'HEAD' ? undefined : spool.reader(range?.start, range?.end));
    },
  });

  app.get('/peer/v1/images', async (req, reply) => {
    const name = (req.query as { name?: string }).name ?? '';
    const record = name ? await store.images.get(name) : undefined;
    return record ? record.target : reply.code(404).send(notFound(name));
  });

  return app;
}
