// Requests to other members' data planes, signed with the membership proof and, unless the fleet runs
// with --peer-plaintext, over TLS to the member's identity key. node:http(s) with kept-alive connections:
// for bulk bytes it costs about half the CPU of fetch (undici) on this kind of machine.
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { connect, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { DataPlane } from '../dht/membership.js';
import { AUTH_HEADER, proof } from './peer-auth.js';
import { peerIdOfCertificate, TLS_VERSION, type PeerTls } from './peer-tls.js';

const MAX_SOCKETS = 32;
/** Past this many members' agents, those without a connection are dropped: members come and go over months. */
const AGENTS_KEPT = 64;
/** A handshake not done by then is abandoned: the request that wanted it may be long gone, its socket must not linger. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

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
  /** Last byte wanted (inclusive): a range request up to it. */
  to?: number;
  headers?: Record<string, string>;
  signal: AbortSignal;
}

/** The member at the other end is not the one asked for: its key is not that peer id's. */
export class WrongPeerError extends Error {}

/**
 * Connections to one member, handed to requests only once the member has proven its identity: the
 * chain of a self-signed certificate never verifies (so Node would not call checkServerIdentity), and the
 * key is compared on 'secureConnect' before the socket is given to any request, so no request byte is
 * ever written to an impostor.
 */
class PinnedAgent extends HttpsAgent {
  constructor(private readonly peerId: string, tls: PeerTls) {
    // No cached sessions: every connection shows the member's certificate again.
    super({ keepAlive: true, maxSockets: MAX_SOCKETS, key: tls.key, cert: tls.cert, rejectUnauthorized: false,
      minVersion: TLS_VERSION, maxVersion: TLS_VERSION, maxCachedSessions: 0 });
  }

  override createConnection(options: RequestOptions, done?: (err: Error | null, socket: Duplex) => void): undefined {
    const socket = connect(options as Parameters<typeof connect>[0]);
    const where = `${options.host}:${options.port}`;
    const fail = (err: Error) => done?.(err, socket);
    socket.once('error', fail);
    socket.setTimeout(HANDSHAKE_TIMEOUT_MS, () => socket.destroy(new Error(`TLS handshake with ${where} took over ${HANDSHAKE_TIMEOUT_MS} ms`)));
    socket.once('secureConnect', () => {
      socket.off('error', fail);
      socket.setTimeout(0);
      const err = this.#check(socket, where);
      if (err) {
        socket.destroy();
        return fail(err);
      }
      done?.(null, socket);
    });
    return undefined;
  }

  #check(socket: TLSSocket, where: string): Error | undefined {
    const id = this.peerId;
    const cert = socket.getPeerX509Certificate();
    if (!cert) return new WrongPeerError(`peer ${id} at ${where} presented no certificate`);
    try {
      const presented = peerIdOfCertificate(cert);
      if (presented !== id) return new WrongPeerError(`peer at ${where} is ${presented}, not ${id} as expected: connection refused`);
    } catch (err) {
      return new WrongPeerError(`peer at ${where} is not ${id}: ${(err as Error).message}`, { cause: err });
    }
    return undefined;
  }
}

/** Why a request failed, said so that a fleet whose ends disagree on --peer-plaintext can tell. */
function explained(err: NodeJS.ErrnoException, peer: DataPlane, tls: boolean): Error {
  if (err instanceof WrongPeerError || err.name === 'AbortError') return err;
  const plaintextPeer = tls && /wrong version number|packet length too long|EPROTO/i.test(`${err.code} ${err.message}`);
  const tlsPeer = !tls && err.code === 'ECONNRESET';
  const hint = plaintextPeer ? ': it does not speak TLS (does it run with --peer-plaintext? both ends must agree)'
    : tlsPeer ? ': it closed the connection (does it expect TLS while this node runs with --peer-plaintext? both ends must agree)' : '';
  return new Error(`peer ${peer.id} at ${peer.url}: ${err.message}${hint}`, { cause: err });
}

/** Requests to members' data planes: https:// ones over TLS (one agent per member), http:// ones in clear. */
export class PeerClient {
  readonly #plain = new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS });
  readonly #pinned = new Map<string, PinnedAgent>();

  /** `tls`: what this node presents; without it only plaintext (http://) members can be reached. */
  constructor(private readonly membershipKey: Buffer, private readonly tls?: PeerTls) {}

  request(peer: DataPlane, path: string, init: PeerRequest): Promise<PeerResponse> {
    const method = init.method ?? 'GET';
    const headers: Record<string, string> = { ...init.headers, [AUTH_HEADER]: proof(this.membershipKey, { method, path, target: peer.id, body: init.body }) };
    if (init.from || init.to !== undefined) headers.range = `bytes=${init.from ?? 0}-${init.to ?? ''}`;
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    const secure = peer.url.startsWith('https:');
    return new Promise((resolve, reject) => {
      const onResponse = (res: IncomingMessage) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      const url = `${peer.url}${path}`;
      const req = secure
        ? httpsRequest(url, { method, headers, agent: this.#agentFor(peer), signal: init.signal }, onResponse)
        : httpRequest(url, { method, headers, agent: this.#plain, signal: init.signal }, onResponse);
      req.once('error', (err) => reject(explained(err, peer, secure)));
      req.end(init.body);
    });
  }

  #agentFor(peer: DataPlane): PinnedAgent {
    if (!this.tls) throw new Error(`peer ${peer.id} at ${peer.url} is reached over TLS, but this client has no certificate`);
    let agent = this.#pinned.get(peer.id);
    if (!agent) {
      if (this.#pinned.size >= AGENTS_KEPT) this.#dropUnconnected();
      this.#pinned.set(peer.id, (agent = new PinnedAgent(peer.id, this.tls)));
    }
    return agent;
  }

  #dropUnconnected(): void {
    // Node leaves an empty list behind for a connection that failed.
    const none = (lists: NodeJS.ReadOnlyDict<unknown[]>) => Object.values(lists).every((list) => !list?.length);
    for (const [id, agent] of this.#pinned) {
      if (none(agent.sockets) && none(agent.freeSockets) && none(agent.requests)) {
        agent.destroy();
        this.#pinned.delete(id);
      }
    }
  }

  /** Members' agents held (each keeps that member's connections). */
  get agents(): number {
    return this.#pinned.size;
  }
}
