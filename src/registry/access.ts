// Who may do what on the registry listener (the OCI API and the admin API beside it):
// - reads: clients on loopback, clients of the networks in `allow`, and anyone with the token;
// - writes (push, tag, delete, blob upload): root or a member of the write group, told apart by the
//   uid that owns the client's loopback socket, as docker.sock's permissions do; or anyone with the token.
// An unprivileged local user can therefore pull, as containerd and dockerd do, but never change what
// the host or, through replication, the fleet serves.
import { timingSafeEqual } from 'node:crypto';
import { BlockList, isIPv4, type Socket } from 'node:net';
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { RegistryError } from './errors.js';
import { LogRateLimiter } from '../util/log-rate-limiter.js';
import { crossSiteRefusal, reboundRefusal } from './browser-guard.js';
import { userInGroup } from './group-membership.js';
import { loopbackClientUid } from './socket-owner.js';

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
export const CHALLENGE = { 'www-authenticate': 'Basic realm="layermesh"' };

export interface AccessOptions {
  /** Accepted as `Authorization: Bearer <token>`, or Basic with it as the password. */
  token?: string;
  /** Networks (CIDR) whose clients read without credentials, as loopback clients do. */
  allow?: string[];
  /** Local users in this group write without the token, as root does. */
  writeGroup: string;
  log: Logger;
  /** The uid behind a loopback connection (default: the kernel's socket table); tests give their own. */
  localUid?: (socket: Socket) => Promise<number | undefined>;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.') || host.startsWith('::ffff:127.');
}

export function blockListOf(cidrs: string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [net, bits] = cidr.split('/');
    const type = isIPv4(net) ? 'ipv4' : 'ipv6';
    const prefix = bits === undefined ? (type === 'ipv4' ? 32 : 128) : Number(bits);
    try {
      list.addSubnet(net, prefix, type);
    } catch (err) {
      throw new Error(`not a network: "${cidr}" (expected e.g. 10.0.0.0/8)`, { cause: err });
    }
  }
  return list;
}

function presentedToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const [scheme, value = ''] = header.split(' ', 2);
  if (scheme.toLowerCase() === 'bearer') return value;
  if (scheme.toLowerCase() === 'basic') return Buffer.from(value, 'base64').toString('utf8').split(':').slice(1).join(':');
  return undefined;
}

export class Access {
  readonly #allow: BlockList;
  /** Each connection's local user, looked up once. */
  readonly #writers = new WeakMap<Socket, Promise<{ uid?: number; writes: boolean }>>();
  /** Refused writes get a line per user or address now and then: anyone who may connect can send them. */
  readonly #refusals = new LogRateLimiter();

  constructor(private readonly opts: AccessOptions) {
    this.#allow = blockListOf(opts.allow ?? []);
  }

  /** Whether the registry should announce a credentials challenge on its ping (clients then send them). */
  get hasToken(): boolean {
    return this.opts.token !== undefined;
  }

  /** Throws the spec's 401 or 403 when the request may not go on. */
  async check(req: FastifyRequest): Promise<void> {
    const crossSite = crossSiteRefusal(req.method, req.url, req.headers);
    if (crossSite) throw new RegistryError(403, 'DENIED', crossSite);
    if (this.#tokenGiven(req.headers.authorization)) return;
    const rebound = reboundRefusal(req.headers);
    if (rebound) throw new RegistryError(403, 'DENIED', rebound);
    const address = req.socket.remoteAddress ?? '';
    const local = isLoopback(address);
    if (!WRITE_METHODS.has(req.method)) {
      if (local || this.#allowed(address)) return;
      throw new RegistryError(401, 'UNAUTHORIZED', 'this registry serves clients off loopback only with its token', undefined, CHALLENGE);
    }
    const user = local ? await this.#localUser(req.socket) : undefined;
    if (user?.writes) return;
    const who = user?.uid === undefined ? 'this client' : `this client runs as uid ${user.uid}, which`;
    const why = local
      ? `writes need root or membership of group ${this.opts.writeGroup} (${who} is neither)`
      : 'writes from other hosts need the registry token';
    const admitted = this.#refusals.admit(user?.uid === undefined ? address : `uid ${user.uid}`);
    if (admitted) {
      this.opts.log.info({ method: req.method, url: req.url.slice(0, 200), client: address, uid: user?.uid, suppressed: admitted.suppressed + admitted.suppressedOthers }, 'write refused');
    }
    if (this.opts.token) throw new RegistryError(401, 'UNAUTHORIZED', `${why}, or the registry token`, undefined, CHALLENGE);
    throw new RegistryError(403, 'DENIED', why);
  }

  #tokenGiven(header: string | undefined): boolean {
    const { token } = this.opts;
    if (!token) return false;
    const given = Buffer.from(presentedToken(header) ?? '');
    const want = Buffer.from(token);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  #allowed(address: string): boolean {
    const plain = address.replace(/^::ffff:/i, '');
    return this.#allow.check(plain, isIPv4(plain) ? 'ipv4' : 'ipv6');
  }

  #localUser(socket: Socket): Promise<{ uid?: number; writes: boolean }> {
    let user = this.#writers.get(socket);
    if (!user) {
      user = (async () => {
        const uid = await (this.opts.localUid ?? loopbackClientUid)(socket);
        if (uid === undefined) return { writes: false };
        return { uid, writes: uid === 0 || (await userInGroup(uid, this.opts.writeGroup)) };
      })();
      this.#writers.set(socket, user);
    }
    return user;
  }
}
