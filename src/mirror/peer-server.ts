// The peer data plane: what this host holds locally, for other members, over HTTP: blobs in the store,
// and blobs still arriving here (from their spool, as far as they have arrived: that is how a fan-out
// becomes a tree instead of every node pulling from the first). It never asks another peer (no loops by
// construction) and answers only requests that prove membership, over TLS with its identity key unless
// the fleet runs with --peer-plaintext.
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { StoreUnavailableError, type Store } from '../store/store.js';
import { isDigest } from '../oci/digest.js';
import { pushOf } from '../oci/tag-push.js';
import { RangeNotSatisfiableError } from '../http/range.js';
import { blobHeaders, countSent, requestedRange, serveBlob } from '../http/serve-blob.js';
import { sendChunks } from '../http/send-file.js';
import type { Bandwidth } from './bandwidth.js';
import { LevelSends, levelled, type LevelSender } from './level-sends.js';
import { LogRateLimiter } from '../util/log-rate-limiter.js';
import { AUTH_HEADER, ProofChecker } from './peer-auth.js';
import { peerIdOfCertificate, TLS_VERSION, type PeerTls } from './peer-tls.js';
import { AWAIT_COPY_MS, AWAIT_WHOLE_MS, BLOB_PATH, IMAGES_PATH, MAX_BODY_BYTES, BODY_TIMEOUT_MS, PATIENT_HEADER, PIPELINE_MIN_BYTES, SEQUENCE_PATH, TRY_HEADER, WHOLE_HEADER, type Piece, type SequenceLevel } from './peer-protocol.js';
import { peerSentBytes } from './metrics.js';
import type { Spool } from './spool.js';
import type { Spools } from './spools.js';
import { badRequest, jsonOf, sequenceAsked } from './peer-requests.js';

const notFound = (what: string) => ({ errors: [{ code: 'BLOB_UNKNOWN', message: `${what} not held here` }] });

const AWAIT_POLL_MS = 20;
const STORE_EVERY_ROUNDS = 10;
/** Longest image name asked for: a repository of 255 characters and a tag or digest. */
const MAX_IMAGE_NAME = 400;
/** A TLS handshake not done by then is dropped (Node's default, 120 s, let anyone hold a connection that long). */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Bodies read at once before their proof can be checked, in all and from one address: anyone who reaches the port can send them. */
const MAX_BODIES_READING = 64;
const MAX_BODIES_READING_FROM_ONE = 16;

interface Held {
  size: number;
  /** Set when the blob is still arriving. */
  spool?: Spool;
}

export interface PeerServerOptions {
  store: Store;
  spools: Spools;
  /** Proves membership: requests without a proof made with it are refused. */
  membershipKey: Buffer;
  /** This node's peer id: proofs made for another node are refused. */
  selfId: string;
  log: Logger;
  /** This node's certificate: the data plane speaks TLS (1.3 only) and asks clients for theirs. Absent: plain HTTP. */
  tls?: PeerTls;
  /** How long a patient peer may wait for this node's copy of a blob to begin. Default AWAIT_COPY_MS. */
  awaitCopyMs?: number;
  /** How long a peer asking only a holder of the whole blob (WHOLE_HEADER) may wait for this node's copy to be whole. Default AWAIT_WHOLE_MS. */
  awaitWholeMs?: number;
  /** What is sent goes within the node's upload limit. */
  bandwidth?: Bandwidth;
}

export function createPeerServer(opts: PeerServerOptions) {
  const { store, spools, membershipKey, log, awaitCopyMs = AWAIT_COPY_MS, awaitWholeMs = AWAIT_WHOLE_MS } = opts;
  const proofs = new ProofChecker(membershipKey, opts.selfId);
  const { bandwidth } = opts;
  const pace = bandwidth && ((bytes: number) => bandwidth.take('upload', bytes));
  const app = Fastify({
    return503OnClosing: true,
    bodyLimit: MAX_BODY_BYTES,
    // Clients are asked for their certificate, to tell in the log which member asked; membership itself is
    // proven by each request's proof, since anyone can make a self-signed certificate.
    https: opts.tls ? { key: opts.tls.key, cert: opts.tls.cert, requestCert: true, rejectUnauthorized: false, minVersion: TLS_VERSION, handshakeTimeout: HANDSHAKE_TIMEOUT_MS } : null,
  });
  if (opts.tls) {
    // Anyone who reaches the port can fail a handshake: a line per address now and then, not per attempt.
    const limiter = new LogRateLimiter();
    app.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      const admitted = limiter.admit(socket.remoteAddress ?? '');
      if (!admitted) return;
      const plain = err.code === 'ERR_SSL_HTTP_REQUEST' || /http request/i.test(err.message);
      log.warn({ from: socket.remoteAddress, err: err.message, suppressed: admitted.suppressed + admitted.suppressedOthers },
        plain ? 'plain HTTP on the TLS peer data plane: does the client run with --peer-plaintext? both ends must agree' : 'TLS handshake with a peer failed');
    });
  }
  /** The peer id of the client's certificate, for the log. */
  const clientOf = (req: FastifyRequest): string | undefined => {
    const cert = opts.tls ? (req.raw.socket as TLSSocket).getPeerX509Certificate() : undefined;
    try {
      return cert && peerIdOfCertificate(cert);
    } catch {
      return undefined;
    }
  };
  // Per blob, the answers being sent now, and to which patient peers (by peer id). Local pulls are never
  // refused; a large blob goes to one patient peer at a time, the others are sent to the copies it feeds.
  // A range with an end is the rest of a stripe whose feeder stopped, asked of this node as its stand-in
  // (replication-plan.ts): sent on, it would find every node down the tree as busy.
  const sending = new Map<string, { count: number; to: string[] }>();
  const patientPeer = (req: FastifyRequest) => req.headers[PATIENT_HEADER] as string | undefined;
  const standingIn = (req: FastifyRequest) => /^bytes=\d+-\d+$/.test(req.headers.range ?? '');
  const busy = (digest: string, size: number, req: FastifyRequest) => req.method === 'GET' && patientPeer(req) !== undefined
    && !standingIn(req) && size >= PIPELINE_MIN_BYTES && (sending.get(digest)?.count ?? 0) > 0;
  /** Counts an answer sending `digest` until the returned function is called. */
  const track = (digest: string, peer: string | undefined) => {
    const entry = sending.get(digest) ?? { count: 0, to: [] };
    sending.set(digest, entry);
    entry.count++;
    if (peer) entry.to.push(peer);
    return () => {
      entry.count--;
      if (peer) entry.to.splice(entry.to.indexOf(peer), 1);
      if (entry.count === 0) sending.delete(digest);
    };
  };

  /**
   * The blob's size and, when it is still arriving, its spool; a patient peer may wait for it to begin. `whole`:
   * only once this node holds it whole (stored, or verified in its spool), waited for up to `awaitWholeMs`.
   */
  const held = async (digest: string, patient: boolean, whole = false): Promise<Held | undefined> => {
    const deadline = Date.now() + (whole ? awaitWholeMs : patient ? awaitCopyMs : 0);
    for (let round = 0; ; round++) {
      const last = Date.now() >= deadline;
      // The store is asked less often than the spools: each ask is a call to containerd.
      if (last || round % STORE_EVERY_ROUNDS === 0) {
        const stored = await store.stat(digest);
        if (stored) return { size: stored.size };
      }
      const spool = spools.get(digest);
      if (spool?.size !== undefined && (!whole || spool.verified)) return { size: spool.size, spool };
      if (last) return undefined;
      // A spool's size is told as it comes; its verification is not, so a wait for it is polled.
      await (whole ? new Promise((resolve) => setTimeout(resolve, AWAIT_POLL_MS)) : spools.sized(digest, AWAIT_POLL_MS));
    }
  };

  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    if (err instanceof RangeNotSatisfiableError) {
      return reply.code(416).header('content-range', `bytes */${err.size}`).send({ errors: [{ code: 'RANGE_INVALID', message: err.message }] });
    }
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status < 500) return reply.code(status).send({ errors: [{ code: 'UNKNOWN', message: err.message }] });
    // Details (paths, causes) go to the log only.
    log.error({ err, method: req.method, url: req.url, from: req.ip }, 'peer request failed');
    if (err instanceof StoreUnavailableError) {
      return reply.code(503).header('retry-after', String(err.retryAfterSeconds)).send({ errors: [{ code: 'UNAVAILABLE', message: err.message }] });
    }
    return reply.code(status).send({ errors: [{ code: 'UNKNOWN', message: `internal error (request ${req.id})` }] });
  });

  // A proof covers the body too: bodies are kept as sent, whatever their type, and a request with one is
  // checked once it is read; the handler parses it only then.
  const raw = new WeakMap<FastifyRequest, Buffer>();
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
    raw.set(req, body as Buffer);
    done(null, body);
  });
  // Anyone who reaches the port can send these: a line per address now and then, not per request.
  const refusals = new LogRateLimiter();
  const refuse = (req: FastifyRequest, reply: FastifyReply) => {
    const admitted = refusals.admit(req.ip);
    if (admitted) {
      log.warn({ method: req.method, url: req.url.slice(0, 200), from: req.ip, client: clientOf(req), suppressed: admitted.suppressed + admitted.suppressedOthers },
        'peer request without a valid membership proof');
    }
    // The connection goes too: a non-member must not hold it by asking again now and then.
    return reply.code(401).header('connection', 'close').send({ errors: [{ code: 'UNAUTHORIZED', message: 'not a member of this mesh' }] });
  };
  let reading = 0;
  const readingFrom = new Map<string, number>();
  const proven = (req: FastifyRequest, body?: Buffer) =>
    proofs.verify({ method: req.method, path: req.url, body }, req.headers[AUTH_HEADER] as string | undefined);
  app.addHook('onRequest', async (req, reply) => {
    if (req.method !== 'POST') return proven(req) ? undefined : refuse(req, reply);
    // A body is read before its proof can be checked (the proof covers it), so whoever reaches the port may send
    // one: each is small (bodyLimit), and one trickled in to hold a connection and its buffer is cut off. A timer
    // per body, not Node's request timeout, which checks every connection on a timer of its own, idle or not.
    // So many at once (each buffered up to bodyLimit) are refused, the connection closed.
    const from = req.ip;
    if (reading >= MAX_BODIES_READING || (readingFrom.get(from) ?? 0) >= MAX_BODIES_READING_FROM_ONE) {
      return reply.code(503).header('connection', 'close').header('retry-after', '1').send({ errors: [{ code: 'UNAVAILABLE', message: 'too many requests being read' }] });
    }
    reading++;
    readingFrom.set(from, (readingFrom.get(from) ?? 0) + 1);
    const cut = setTimeout(() => req.raw.destroy(), BODY_TIMEOUT_MS).unref();
    let counted = true;
    const done = () => {
      clearTimeout(cut);
      if (!counted) return;
      counted = false;
      reading--;
      const left = readingFrom.get(from)! - 1;
      if (left === 0) readingFrom.delete(from);
      else readingFrom.set(from, left);
    };
    req.raw.once('end', done).once('close', done);
  });
  app.addHook('preHandler', async (req, reply) => {
    if (req.method === 'POST' && !proven(req, raw.get(req))) return refuse(req, reply);
  });

  app.route({
    method: ['GET', 'HEAD'],
    url: `${BLOB_PATH}:digest`,
    handler: async (req, reply) => {
      const { digest } = req.params as { digest: string };
      if (!isDigest(digest)) return reply.code(404).send(notFound(digest));
      const found = await held(digest, patientPeer(req) !== undefined, req.headers[WHOLE_HEADER] !== undefined);
      if (!found) return reply.code(404).send(notFound(digest));
      const { size, spool } = found;
      if (busy(digest, size, req)) {
        return reply.code(503).header('retry-after', '1').header(TRY_HEADER, sending.get(digest)!.to.join(','))
          .send({ errors: [{ code: 'TOOMANYREQUESTS', message: `already sending ${digest}` }] });
      }
      if (req.method === 'GET') {
        const sent = track(digest, patientPeer(req));
        // A peer that left while this node waited for the blob will not be sent to: its 'close' has come already.
        if (reply.raw.closed) sent();
        else reply.raw.once('close', sent);
        countSent(reply.raw, (bytes) => peerSentBytes.inc(bytes));
      }
      if (await serveBlob(store, digest, req, reply, log, { pace })) return reply;
      if (spool?.size === undefined) return reply.code(404).send(notFound(digest));
      const range = requestedRange(req, digest, spool.size);
      blobHeaders(reply, digest, spool.size, range);
      if (req.method === 'HEAD') return reply.send();
      await sendChunks(reply, spool.lend(range?.start, range?.end, { forPeer: true }), log, pace);
      return reply;
    },
  });

  const levels = new LevelSends();
  /**
   * The pieces asked for, in order, while this node holds their blobs; the stream ends at the first it does not.
   * A tree's root (`level`) is kept level with the other roots.
   */
  async function* inOrder(pieces: Piece[], first: Held, peer: string | undefined, level: SequenceLevel | undefined): AsyncGenerator<Uint8Array> {
    const sender = level && levels.join(level);
    try {
      yield* sequence(pieces, first, peer, sender);
    } finally {
      sender?.leave();
    }
  }

  async function* sequence(pieces: Piece[], first: Held, peer: string | undefined, sender: LevelSender | undefined): AsyncGenerator<Uint8Array> {
    let found: Held | undefined = first;
    for (const [i, { digest, size, offset, length }] of pieces.entries()) {
      if (i > 0) found = await held(digest, true);
      if (found?.size !== size) {
        log.info({ digest, peer, sent: i, of: pieces.length }, 'ending a sequence at a blob not held here; the peer takes the rest elsewhere');
        return;
      }
      if (length === 0) continue;
      const range = { start: offset, end: offset + length - 1 };
      const release = track(digest, peer);
      try {
        const bytes = found.spool ? found.spool.lend(range.start, range.end, { forPeer: true }) : (await store.open(digest, range)).stream;
        // A piece still arriving is sent as it comes.
        const counted = sender && !found.spool ? levelled(bytes, sender) : bytes;
        yield* bandwidth ? bandwidth.throttle('upload', counted) : counted;
        peerSentBytes.inc(length);
      } finally {
        release();
      }
    }
  }

  app.post(SEQUENCE_PATH, async (req, reply) => {
    const asked = sequenceAsked(jsonOf(req.body));
    if (typeof asked === 'string') return reply.code(400).send(badRequest(asked));
    const { pieces: blobs, level } = asked;
    // Answered once the first blob can be sent: a node further down a pipeline may wait for its copy to begin.
    const first = await held(blobs[0].digest, true);
    if (first?.size !== blobs[0].size) return reply.code(404).send(notFound(blobs[0].digest));
    await sendChunks(reply.header('content-type', 'application/octet-stream'), inOrder(blobs, first, patientPeer(req), level), log);
    return reply;
  });

  app.get(IMAGES_PATH, async (req, reply) => {
    const name = (req.query as { name?: unknown }).name;
    if (typeof name !== 'string' || name.length > MAX_IMAGE_NAME || !/^[\x21-\x7e]+$/.test(name)) {
      return reply.code(400).send({ errors: [{ code: 'NAME_INVALID', message: `expected ?name=<image name of at most ${MAX_IMAGE_NAME} characters>` }] });
    }
    const record = await store.images.get(name);
    // With the stamp of the push it follows: the asker picks the newest push among the holders' answers.
    return record ? { ...record.target, push: pushOf(record.labels) } : reply.code(404).send(notFound(name));
  });

  return app;
}
