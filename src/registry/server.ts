// The OCI Distribution API over fastify. Routes are matched here rather than by
// fastify's router because repository names contain slashes.
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { setTimeout } from 'node:timers/promises';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { type Access, CHALLENGE } from './access.js';
import { deleteBlob, getBlob } from './blobs.js';
import type { Handler, RegistryDeps, RouteContext } from './context.js';
import { catalog, listReferrers, listTags } from './discovery.js';
import { asRegistryError, RegistryError } from './errors.js';
import { deleteManifest, getManifest, putManifest } from './manifests.js';
import { repositoryKey } from '../oci/names.js';
import { KeyedQueue } from '../util/keyed-queue.js';
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus } from './uploads.js';

type Routes = Partial<Record<string, Handler>>;

const ROUTES: [RegExp, Routes][] = [
  [/^\/v2\/(.+)\/tags\/list$/, { GET: listTags }],
  [/^\/v2\/(.+)\/manifests\/([^/]+)$/, { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest }],
  [/^\/v2\/(.+)\/blobs\/uploads\/?()$/, { POST: startUpload }],
  [/^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, { GET: uploadStatus, PATCH: patchUpload, PUT: finishUpload, DELETE: cancelUpload }],
  [/^\/v2\/(.+)\/blobs\/([^/]+)$/, { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob }],
  [/^\/v2\/(.+)\/referrers\/([^/]+)$/, { GET: listReferrers }],
];

export interface RegistryOptions extends RegistryDeps {
  /** Who may read and who may write, checked before any route (the admin API's included). */
  access: Access;
  /** A connection on which nothing moves either way for this long is closed; default IDLE_CONNECTION_MS. */
  idleConnectionMs?: number;
}

/**
 * A client that stops reading a blob (or sending one) must not hold its descriptor and buffers for ever: any
 * local user may read. Longer than any pause of a working client, or of meshd waiting on a peer for it.
 */
const IDLE_CONNECTION_MS = 120_000;

function firstValues(query: unknown): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries((query ?? {}) as Record<string, unknown>)) out[k] = Array.isArray(v) ? String(v[0]) : String(v);
  return out;
}

/** Bytes of a failed request's body read and dropped so that its client sees the answer. */
const DRAIN_LIMIT = 16 << 20;
const DRAIN_TIMEOUT_MS = 5000;

async function drained(body: IncomingMessage): Promise<boolean> {
  if (body.readableEnded) return true;
  const declared = Number(body.headers['content-length']);
  if (body.destroyed || !(declared <= DRAIN_LIMIT)) return false;
  body.resume();
  const ended = await Promise.race([
    once(body, 'end').then(() => true, () => false),
    setTimeout(DRAIN_TIMEOUT_MS, false),
  ]);
  return ended && body.readableEnded;
}

export function createRegistry(opts: RegistryOptions) {
  const app = Fastify({
    return503OnClosing: true,
    connectionTimeout: opts.idleConnectionMs ?? IDLE_CONNECTION_MS,
    // A path that is not valid UTF-8 once decoded gets the spec's error format too.
    frameworkErrors: (err, _req, res) => {
      const status = err.statusCode && err.statusCode < 500 ? err.statusCode : 400;
      void (res as FastifyReply).code(status).header('docker-distribution-api-version', 'registry/2.0')
        .send({ errors: [{ code: status === 400 ? 'NAME_INVALID' : 'UNSUPPORTED', message: err.message }] });
    },
  });
  const log = opts.log;
  // Bodies are streamed by the handlers themselves: no parser may consume them.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));

  app.addHook('onRequest', async (req, reply) => {
    reply.header('docker-distribution-api-version', 'registry/2.0');
    await opts.access.check(req);
  });

  app.setErrorHandler(async (err: Error & { statusCode?: number }, req, reply) => {
    // A client still sending its body reads the answer only once it has sent it: a small rest is read
    // and dropped. A large one is not; the connection closes, as an unread body would be taken for the
    // next request on it.
    if (!(await drained(req.raw))) reply.header('connection', 'close');
    if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') {
      log.info({ method: req.method, url: req.url }, 'client went away mid-request');
      return reply.send();
    }
    const known = asRegistryError(err);
    if (known) {
      if (known.status >= 500) log.error({ err, url: req.url }, 'registry request failed');
      return reply.code(known.status).headers(known.headers).send(known.body());
    }
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status < 500) return reply.code(status).send({ errors: [{ code: 'UNKNOWN', message: err.message }] });
    // The details (paths, causes) go to the log only: a response never shows the server's insides.
    log.error({ err, method: req.method, url: req.url, request: req.id }, 'registry request failed');
    return reply.code(status).send({ errors: [{ code: 'UNKNOWN', message: `internal error (request ${req.id}; details are in meshd's log)` }] });
  });

  const dispatch = async (req: FastifyRequest, reply: FastifyReply) => {
    const path = req.url.split('?', 1)[0];
    if (path === '/v2' || path === '/v2/') {
      // skopeo, podman and buildah send credentials only to registries that announced a challenge when pinged
      // here; pulls stay anonymous, so the challenge rides on the 200 (allowed by RFC 7235 §4.1).
      if (opts.access.hasToken) reply.headers(CHALLENGE);
      return reply.send({});
    }
    if (path === '/v2/_catalog' && req.method === 'GET') return catalog(context(req, reply, '', ''));
    for (const [pattern, routes] of ROUTES) {
      const m = pattern.exec(path);
      if (!m) continue;
      const handler = routes[req.method];
      if (!handler) throw new RegistryError(405, 'UNSUPPORTED', `${req.method} is not supported here`);
      return handler(context(req, reply, decodeURIComponent(m[1]), decodeURIComponent(m[2] ?? '')));
    }
    throw new RegistryError(404, 'UNSUPPORTED', 'no such endpoint', { path });
  };

  const tagWrites = new KeyedQueue();
  const context = (req: FastifyRequest, reply: FastifyReply, name: string, ref: string): RouteContext => {
    const query = firstValues(req.query);
    const repo = name ? repositoryKey(name, query.ns) : '';
    return { ...opts, req, reply, name, ref, query, repo, tagWrites };
  };

  app.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'], url: '/v2/*', handler: dispatch });
  app.route({ method: ['GET', 'HEAD'], url: '/v2', handler: dispatch });
  return app;
}
