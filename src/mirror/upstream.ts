// Manifests and blobs from an image's upstream registry over the OCI distribution API, for
// `--upstream` pull-through. Only fetching and auth live here: the mirror verifies and stores.
// Node's fetch (undici) is enough: a pull-through is network-bound.
import type { Logger } from 'pino';
import { digestOf, isDigest, type Descriptor } from '../oci/digest.js';
import { MANIFEST_MEDIA_TYPES } from '../oci/manifest.js';
import { untilStalled } from './until-stalled.js';
import { basicHeader, credentialsFor, parseChallenge, type Challenge, type Credentials } from './upstream-auth.js';
import { MAX_MANIFEST_BYTES, readBounded } from '../oci/limits.js';
import { LogRateLimiter } from '../util/log-rate-limiter.js';

export interface UpstreamOptions {
  /** Where a registry is really reached (`docker.io` → `http://10.0.0.5:5000`); others: `https://<registry>`. */
  endpoints?: Record<string, string>;
  /** Credentials by registry host, from a config.json. */
  credentials?: Map<string, Credentials>;
  /** How long an answer may take to begin, and how long its body may pause. */
  timeoutMs: number;
  log: Logger;
}

/** A blob or manifest as it arrives; `body` throws when the upstream stalls or breaks. */
export interface UpstreamBody {
  size?: number;
  body: AsyncIterable<Uint8Array>;
  /** Lets the connection go when the body is not read to its end (refused before its first byte). */
  cancel(): void;
}

const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
/** Tokens without `expires_in` last 60 s (distribution's token spec); renewed a little early. */
const DEFAULT_TOKEN_S = 60;
const TOKEN_MARGIN_MS = 5_000;
/** Authorizations kept at most, the oldest dropped first: a client may name any repository of any registry. */
const MAX_AUTHORIZATIONS = 1_000;
/** A token service's answer: a token and its lifetime, a few KB. */
const MAX_TOKEN_ANSWER_BYTES = 64 << 10;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/** The headers to send to another origin: credentials stay with the origin they were meant for. */
const withoutAuthorization = ({ authorization: _, ...rest }: Record<string, string>): Record<string, string> => rest;

/** Splits a store repository key (`docker.io/library/app`) into registry and path. */
function split(repo: string): { registry: string; path: string } {
  const slash = repo.indexOf('/');
  return { registry: repo.slice(0, slash), path: repo.slice(slash + 1) };
}

export class Upstream {
  /** Authorization per registry and repository, with when it stops being good. */
  readonly #auth = new Map<string, { header: string; until: number }>();
  /** Any local reader can make each of these happen per request (a registry of its choosing, a digest it lacks). */
  readonly #warnings = new LogRateLimiter();

  constructor(private readonly opts: UpstreamOptions) {}

  /** A warning about a registry, a line a minute for each registry and kind. */
  #warn(registry: string, fields: Record<string, unknown>, msg: string): void {
    const admitted = this.#warnings.admit(`${registry} ${msg}`);
    if (admitted) this.opts.log.warn({ registry, ...fields, suppressed: admitted.suppressed + admitted.suppressedOthers }, msg);
  }

  endpoint(registry: string): string {
    const configured = this.opts.endpoints?.[registry];
    if (configured) return configured.replace(/\/+$/, '');
    return registry === 'docker.io' ? 'https://registry-1.docker.io' : `https://${registry}`;
  }

  /** The manifest a tag names upstream (its digest, by HEAD; by GET when HEAD gives none). */
  async resolveTag(repo: string, tag: string): Promise<Descriptor | undefined> {
    const head = await this.#request(repo, `manifests/${tag}`, 'HEAD', { accept: ACCEPT });
    if (!head?.ok) return undefined;
    const digest = head.headers.get('docker-content-digest') ?? '';
    const size = Number(head.headers.get('content-length'));
    const mediaType = head.headers.get('content-type')?.split(';')[0].trim() ?? '';
    if (isDigest(digest) && Number.isSafeInteger(size)) return { mediaType, digest, size };
    const ctl = new AbortController();
    const got = await this.#request(repo, `manifests/${tag}`, 'GET', { accept: ACCEPT }, ctl);
    if (!got?.ok) return void (await got?.body?.cancel());
    const body = await this.#read(got, MAX_MANIFEST_BYTES, ctl).catch((err: Error) => {
      this.#warn(split(repo).registry, { repo, tag, err: err.message }, 'the upstream registry sent no usable manifest for the tag');
      return undefined;
    });
    if (body === undefined) return undefined;
    // The digest is what the bytes hash to; the manifest is then fetched by it and verified.
    return { mediaType: got.headers.get('content-type')?.split(';')[0].trim() ?? '', digest: digestOf(body), size: body.length };
  }

  /** A manifest or blob by digest; undefined when the upstream does not have it (or refuses), throws when it cannot be reached. */
  async open(repo: string, digest: string, manifest: boolean): Promise<UpstreamBody | undefined> {
    const ctl = new AbortController();
    const res = await this.#request(repo, `${manifest ? 'manifests' : 'blobs'}/${digest}`, 'GET', manifest ? { accept: ACCEPT } : {}, ctl);
    if (!res) throw new Error(`the upstream registry of ${repo} could not be reached`);
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      return undefined;
    }
    const length = Number(res.headers.get('content-length') ?? NaN);
    return { size: Number.isSafeInteger(length) ? length : undefined, body: this.#guarded(res.body, ctl), cancel: () => ctl.abort() };
  }

  /** A small answer's body, up to `limit` bytes (TooLargeError past it), aborted when no byte comes for the timeout. */
  async #read(res: Response, limit: number, ctl: AbortController): Promise<Buffer> {
    return res.body ? readBounded(this.#guarded(res.body, ctl), limit) : Buffer.alloc(0);
  }

  /** The body, aborted when no byte comes for the timeout. */
  async *#guarded(body: AsyncIterable<Uint8Array>, ctl: AbortController): AsyncIterable<Uint8Array> {
    try {
      yield* untilStalled(body, this.opts.timeoutMs, () => ctl.abort(new Error(`upstream sent nothing for ${this.opts.timeoutMs} ms`)));
    } finally {
      ctl.abort(); // the consumer stopped early: release the connection
    }
  }

  /**
   * One request with the authorization this repository needs: the cached one, else what the
   * upstream's challenge asks for. Undefined (logged) when the upstream cannot be reached; a 401 is
   * returned as is after a clear warning.
   */
  async #request(repo: string, rest: string, method: string, headers: Record<string, string>, ctl = new AbortController()): Promise<Response | undefined> {
    const { registry, path } = split(repo);
    const url = `${this.endpoint(registry)}/v2/${path}/${rest}`;
    const key = `${registry}/${path}`;
    // Compressed answers would change the bytes whose digest is checked and the stated length.
    const base = { ...headers, 'accept-encoding': 'identity' };
    try {
      const cached = this.#auth.get(key);
      const auth = cached && cached.until > Date.now() ? cached.header : undefined;
      let res = await this.#fetch(url, method, auth ? { ...base, authorization: auth } : base, ctl);
      if (res.status !== 401) return res;
      await res.body?.cancel();
      const challenge = parseChallenge(res.headers.get('www-authenticate'));
      const fresh = challenge && (await this.#authorize(registry, key, challenge));
      if (fresh) {
        res = await this.#fetch(url, method, { ...base, authorization: fresh }, ctl);
        if (res.status !== 401) return res;
        await res.body?.cancel();
      }
      this.#warn(registry, { scope: challenge?.params.scope ?? `repository:${path}:pull`, url, credentials: credentialsFor(this.#credentials, registry) !== undefined },
        'the upstream registry refused access (check --upstream-auth)');
      return res;
    } catch (err) {
      this.#warn(registry, { url, err: (err as Error).message }, 'the upstream registry could not be reached');
      return undefined;
    }
  }

  get #credentials(): Map<string, Credentials> {
    return this.opts.credentials ?? new Map();
  }

  /** Answers a challenge: a token from the realm (Bearer) or the credentials (Basic); cached per repository. */
  async #authorize(registry: string, key: string, challenge: Challenge): Promise<string | undefined> {
    const creds = credentialsFor(this.#credentials, registry);
    if (challenge.scheme === 'basic') {
      if (!creds) return undefined;
      const header = basicHeader(creds);
      this.#remember(key, header, Infinity);
      return header;
    }
    if (challenge.scheme !== 'bearer' || !challenge.params.realm) return undefined;
    const endpoint = new URL(this.endpoint(registry));
    const realm = new URL(challenge.params.realm, endpoint);
    if (leavesHttps(endpoint, realm)) {
      // Credentials and tokens in plain text, to wherever the challenge points: not from an https registry.
      this.#warn(registry, { realm: realm.origin + realm.pathname }, 'the upstream registry named a token service that is not https: refused');
      return undefined;
    }
    if (challenge.params.service) realm.searchParams.set('service', challenge.params.service);
    if (challenge.params.scope) realm.searchParams.set('scope', challenge.params.scope);
    // Anonymous when no credentials are filed: public images on Docker Hub still need a token.
    const ctl = new AbortController();
    const res = await this.#fetch(realm.toString(), 'GET', creds ? { authorization: basicHeader(creds) } : {}, ctl);
    if (!res.ok) {
      await res.body?.cancel();
      this.#warn(registry, { realm: realm.origin + realm.pathname, scope: challenge.params.scope, status: res.status }, 'the upstream token service refused a token');
      return undefined;
    }
    let answer: { token?: unknown; access_token?: unknown; expires_in?: number };
    try {
      answer = JSON.parse((await this.#read(res, MAX_TOKEN_ANSWER_BYTES, ctl)).toString('utf8'));
    } catch (err) {
      this.#warn(registry, { realm: realm.origin + realm.pathname, err: (err as Error).message }, 'the upstream token service gave no usable answer');
      return undefined;
    }
    const token = answer.token ?? answer.access_token;
    if (typeof token !== 'string' || !token) return undefined;
    const header = `Bearer ${token}`;
    this.#remember(key, header, Date.now() + (answer.expires_in ?? DEFAULT_TOKEN_S) * 1000 - TOKEN_MARGIN_MS);
    return header;
  }

  #remember(key: string, header: string, until: number): void {
    this.#auth.delete(key);
    if (this.#auth.size >= MAX_AUTHORIZATIONS) this.#auth.delete(this.#auth.keys().next().value!);
    this.#auth.set(key, { header, until });
  }

  /**
   * fetch with a deadline for the answer to begin (the body's pauses are guarded by #guarded). Registries
   * redirect blob GETs to their storage; a redirect is followed only to https, or anywhere from a plain-HTTP
   * endpoint (an operator's choice): else a registry a local user names could have meshd, as root, read a
   * plain-HTTP address inside the host or its network (a cloud's metadata service).
   */
  async #fetch(url: string, method: string, headers: Record<string, string>, ctl: AbortController): Promise<Response> {
    const timer = setTimeout(() => ctl.abort(new Error(`no answer within ${this.opts.timeoutMs} ms`)), this.opts.timeoutMs);
    try {
      const from = new URL(url);
      let at = from;
      for (let hops = 0; ; hops++) {
        const res = await fetch(at, { method, headers, signal: ctl.signal, redirect: 'manual' });
        const location = res.headers.get('location');
        if (!REDIRECTS.has(res.status) || location === null) return res;
        await res.body?.cancel();
        const next = new URL(location, at);
        if (hops === MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects`);
        if (leavesHttps(from, next) || !['http:', 'https:'].includes(next.protocol)) {
          throw new Error(`refused a redirect to ${next.protocol}//${next.host}: only https is followed from an https registry`);
        }
        if (next.origin !== at.origin) headers = withoutAuthorization(headers);
        at = next;
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Whether going from `from` to `to` leaves https: credentials and answers in clear, never from an https registry. */
function leavesHttps(from: URL, to: URL): boolean {
  return from.protocol === 'https:' && to.protocol !== 'https:';
}
