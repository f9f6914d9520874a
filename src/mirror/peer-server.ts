// The peer data plane: what this host holds locally, for other members, over HTTP.
// It never asks another peer (no loops by construction) and answers only requests that prove membership.
import Fastify from 'fastify';
import type { Logger } from 'pino';
import { isDigest, type Store } from '../containerd/store.js';
import { serveBlob } from '../registry/blobs.js';
import { AUTH_HEADER, verifyProof } from './peer-auth.js';

const notFound = (what: string) => ({ errors: [{ code: 'BLOB_UNKNOWN', message: `${what} not held here` }] });

export function createPeerServer(opts: { store: Store; key: Buffer; log: Logger }) {
  const { store, key, log } = opts;
  const app = Fastify({ return503OnClosing: true });

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
      if (!isDigest(digest) || !(await serveBlob(store, digest, req, reply, log))) return reply.code(404).send(notFound(digest));
    },
  });

  app.get('/peer/v1/images', async (req, reply) => {
    const name = (req.query as { name?: string }).name ?? '';
    const record = name ? await store.images.get(name) : undefined;
    return record ? record.target : reply.code(404).send(notFound(name));
  });

  return app;
}
