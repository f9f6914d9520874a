// The push half of the OCI Distribution API, over the tunnel's unix socket (or TCP, for tests).
// node:http rather than fetch: request bodies stream from the source with backpressure, and a unix
// socket needs no extra dependency.
import { Agent, request, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MANIFEST_MEDIA_TYPES } from '../../oci/manifest.js';
import { PusshError, RegistryRejectedError } from './errors.js';
import { printable } from '../table.js';

export interface RegistryEndpoint {
  /** The tunnel's local socket; or host and port for a registry reached directly. */
  socketPath?: string;
  host?: string;
  port?: number;
  /** Sent as Host: the registry's address on the remote. */
  authority: string;
  token?: string;
}

interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

const MAX_ERROR_BODY = 64 << 10;
/**
 * A request that moves no byte either way for this long has failed: a registry that accepted the connection
 * and stalls must not hang pussh. Long enough for the remote's commit of a large layer (a sync to disk).
 */
const IDLE_TIMEOUT_MS = 300_000;

/** A failure to talk to the remote registry at all (as opposed to an HTTP error answer). */
export class ConnectionError extends Error {
  constructor(readonly code: string | undefined, message: string) {
    super(message);
    this.name = 'ConnectionError';
  }
}

export class RegistryClient {
  readonly #agent: Agent;

  constructor(private readonly endpoint: RegistryEndpoint, maxSockets = 8, private readonly idleTimeoutMs = IDLE_TIMEOUT_MS) {
    this.#agent = new Agent({ keepAlive: true, maxSockets });
  }

  close(): void {
    this.#agent.destroy();
  }

  /** GET /v2/: resolves when an OCI registry answers (200, or 401 that asks for credentials). */
  async ping(): Promise<void> {
    const res = await this.#send('GET', '/v2/');
    const isRegistry = res.headers['docker-distribution-api-version'] !== undefined || res.status === 200;
    if (!isRegistry || (res.status !== 200 && res.status !== 401)) {
      throw new PusshError('no-meshd', `something answers at ${this.endpoint.authority} (HTTP ${res.status}) but it is not an OCI registry`);
    }
  }

  async hasBlob(repo: string, digest: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.#send('HEAD', `/v2/${repo}/blobs/${digest}`, { signal });
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw rejected(res, `HEAD blob ${digest}`);
  }

  /**
   * Starts an upload that first asks to mount the blob from `from` (free when the registry holds it
   * there): `mounted` when it did, else the upload's location.
   */
  async startUpload(repo: string, mount: { digest: string; from: string }, signal?: AbortSignal): Promise<{ mounted: true } | { mounted: false; location: string }> {
    const q = new URLSearchParams({ mount: mount.digest, from: mount.from });
    const res = await this.#send('POST', `/v2/${repo}/blobs/uploads/?${q}`, { signal, headers: { 'content-length': 0 } });
    if (res.status === 201) return { mounted: true };
    const location = res.headers.location;
    if (res.status !== 202 || !location) throw rejected(res, `starting the upload of ${mount.digest}`);
    return { mounted: false, location: pathOf(location) };
  }

  /** Sends the whole blob to an upload and completes it (one PUT, the body streamed). */
  async putBlob(location: string, digest: string, size: number, body: Readable, signal?: AbortSignal): Promise<void> {
    const url = `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
    const res = await this.#send('PUT', url, {
      signal,
      headers: { 'content-type': 'application/octet-stream', 'content-length': size },
      body,
    });
    if (res.status !== 201) throw rejected(res, `uploading ${digest}`);
  }

  /** Best effort: the registry would expire it anyway. */
  async cancelUpload(location: string): Promise<void> {
    await this.#send('DELETE', location).catch(() => undefined);
  }

  async hasManifest(repo: string, digest: string): Promise<boolean> {
    const res = await this.#send('HEAD', `/v2/${repo}/manifests/${digest}`, { headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') } });
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw rejected(res, `HEAD manifest ${digest}`);
  }

  async putManifest(repo: string, reference: string, body: Buffer, mediaType: string, headers: OutgoingHttpHeaders = {}): Promise<void> {
    const res = await this.#send('PUT', `/v2/${repo}/manifests/${reference}`, {
      headers: { ...headers, 'content-type': mediaType, 'content-length': body.length },
      body,
    });
    if (res.status !== 201) throw rejected(res, `putting manifest ${repo}:${reference}`);
  }

  #send(method: string, path: string, opts: { headers?: OutgoingHttpHeaders; body?: Buffer | Readable; signal?: AbortSignal } = {}): Promise<Reply> {
    const { socketPath, host, port, authority, token } = this.endpoint;
    const headers: OutgoingHttpHeaders = { host: authority, ...opts.headers };
    if (token) headers.authorization = `Bearer ${token}`;
    return new Promise<Reply>((resolve, reject) => {
      const req = request({ socketPath, host, port, method, path, headers, agent: this.#agent, signal: opts.signal }, (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (c: Buffer) => {
          // Success bodies of push calls are empty; only error bodies are worth keeping.
          if (kept < MAX_ERROR_BODY) chunks.push(c);
          kept += c.length;
        });
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.once('error', reject);
      });
      req.setTimeout(this.idleTimeoutMs, () => {
        req.destroy(Object.assign(new Error(`nothing moved for ${this.idleTimeoutMs / 1000} s`), { code: 'ETIMEDOUT' }));
      });
      req.once('error', (err: NodeJS.ErrnoException) => {
        if (err.name === 'AbortError') return reject(err);
        reject(new ConnectionError(err.code, `${method} ${path}: ${err.message}`));
      });
      if (opts.body === undefined) req.end();
      else if (Buffer.isBuffer(opts.body)) req.end(opts.body);
      // A source that fails mid-stream ends the request with its error; the answer (if any) is then moot.
      else pipeline(opts.body, req).catch((err) => req.destroy(err));
    });
  }
}

/** A Location header may be absolute; the tunnel only needs its path. */
function pathOf(location: string): string {
  const url = new URL(location, 'http://registry');
  return `${url.pathname}${url.search}`;
}

function rejected(res: Reply, what: string): RegistryRejectedError {
  let code = 'UNKNOWN';
  let message = res.body.toString('utf8').trim().slice(0, 500) || httpReason(res.status);
  try {
    const first = (JSON.parse(res.body.toString('utf8')) as { errors?: { code?: string; message?: string; detail?: unknown }[] }).errors?.[0];
    if (first?.code) code = first.code;
    if (first?.message) message = first.detail === undefined ? first.message : `${first.message} (${JSON.stringify(first.detail)})`;
  } catch {
    // not an OCI error body: keep the text
  }
  message = printable(message);
  if (res.status === 401) message += ' — the remote meshd wants a registry token: pass --token or set PUSSH_TOKEN';
  if (res.status === 403) message += ' — pussh writes as the ssh user: on that host, add it to meshd\'s write group (`usermod -aG GROUP USER`; its next ssh login has it), or push as root';
  return new RegistryRejectedError(res.status, code, message, what, retryAfter(res.headers['retry-after']));
}

/** Retry-After as seconds from now: a number of seconds or an HTTP date (RFC 9110). */
function retryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = /^\d+$/.test(value.trim()) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.max(0, seconds) : undefined;
}

function httpReason(status: number): string {
  return status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : status === 404 ? 'not found' : `HTTP ${status}`;
}
