// The peer data plane: what this host holds locally, for other members, over HTTP: blobs in the store,
// and blobs still arriving here (from their spool, as far as they have arrived: that is how a fan-out
// becomes a tree instead of every node pulling from the first). It never asks another peer (no loops by
// construction) and answers only requests that prove membership.
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { isDigest, type Store } from '../containerd/store.js';
import { blobHeaders, serveBlob } from '../registry/blobs.js';
import { AUTH_HEADER, verifyProof } from './peer-auth.js';
import { PARTIAL_HEADER, PATIENT_HEADER, PIPELINE_MIN_BYTES, TRY_HEADER } from './peer-client.js';
import type { Spool } from './spool.js';
import type { Spools } from './spools.js';

const notFound = (what: string) => ({ errors: [{ code: 'BLOB_UNKNOWN', message: `${what} not held here` }] });

/**
 * A patient peer asking for a blob this node does not have yet is the next in a replication pipeline,
 * asking before this node's own copy begins to arrive (which waits for the node before it, and so on):
 * it is kept waiting this long before it is sent elsewhere.
 */
const AWAIT_COPY_MS = 10_000;
const AWAIT_POLL_MS = 20;
const STORE_EVERY_ROUNDS = 10;

export function createPeerServer(opts: { store: Store; spools: Spools; key: Buffer; log: Logger }) {
  const { store, spools, key, log } = opts;
  const app = Fastify({ return503OnClosing: true });
  // Per blob, the answers being sent now, and to which patient peers (by peer id). Local pulls are never
  // refused; a large blob goes to one patient peer at a time, the others are sent to the copies it feeds.
  const sending = new Map<string, { count: number; to: string[] }>();
  const patientPeer = (req: FastifyRequest) => req.headers[PATIENT_HEADER] as string | undefined;
  const busy = (digest: string, size: number, req: FastifyRequest) =>
    req.method === 'GET' && patientPeer(req) !== undefined && size >= PIPELINE_MIN_BYTES && (sending.get(digest)?.count ?? 0) > 0;
  const count = (digest: string, req: FastifyRequest, reply: FastifyReply) => {
    const entry = sending.get(digest) ?? { count: 0, to: [] };
    sending.set(digest, entry);
    const peer = patientPeer(req);
    entry.count++;
    if (peer) entry.to.push(peer);
    reply.raw.once('close', () => {
      entry.count--;
      if (peer) entry.to.splice(entry.to.indexOf(peer), 1);
      if (entry.count === 0) sending.delete(digest);
    });
  };

  /** The blob's size and, when it is still arriving, its spool; a patient peer may wait for it to begin. */
  const held = async (digest: string, patient: boolean): Promise<{ size: number; spool?: Spool } | undefined> => {
    const deadline = Date.now() + (patient ? AWAIT_COPY_MS : 0);
    for (let round = 0; ; round++) {
      const last = Date.now() >= deadline;
      // The store is asked less often than the spools: each ask is a call to containerd.
      if (last || round % STORE_EVERY_ROUNDS === 0) {
        const stored = await store.stat(digest);
        if (stored) return { size: stored.size };
      }
      const spool = spools.get(digest);
      if (spool?.size !== undefined) return { size: spool.size, spool };
      if (last) return undefined;
      await new Promise((r) => setTimeout(r, AWAIT_POLL_MS));
    }
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
      const found = await held(digest, patientPeer(req) !== undefined);
      if (!found) return reply.code(404).send(notFound(digest));
      const { size, spool } = found;
      if (busy(digest, size, req)) {
        return reply.code(503).header('retry-after', '1').header(TRY_HEADER, sending.get(digest)!.to.join(','))
          .send({ errors: [{ code: 'TOOMANYREQUESTS', message: `already sending ${digest}` }] });
      }
      if (req.method === 'GET') count(digest, req, reply);
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
