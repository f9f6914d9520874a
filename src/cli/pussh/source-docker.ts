// The local Docker daemon: its image export API (`GET /images/{name}/get`, what `docker save` uses)
// gives a docker save archive, read like a docker-archive file.
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { DockerEndpoint } from './docker-endpoint.js';
import { PusshError } from './errors.js';
import type { ImageRef } from './refs.js';
import { archiveSource } from './source-archive.js';
import type { ImageSource } from './source.js';

/** The daemon is not there (no socket, nobody listening): a reason to try another source, not a failure. */
export class SourceUnavailableError extends PusshError {
  constructor(message: string) {
    super('image-not-found', message);
    this.name = 'SourceUnavailableError';
  }
}

function get(endpoint: DockerEndpoint, path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const base: RequestOptions = { path, method: 'GET', headers: { host: 'docker' } };
    const req = endpoint.kind === 'unix'
      ? httpRequest({ ...base, socketPath: endpoint.socketPath }, resolve)
      : endpoint.tls
        ? httpsRequest({
          ...base, host: endpoint.host, port: endpoint.port,
          ca: endpoint.tls.ca, cert: endpoint.tls.cert, key: endpoint.tls.key, rejectUnauthorized: endpoint.tls.verify,
        }, resolve)
        : httpRequest({ ...base, host: endpoint.host, port: endpoint.port }, resolve);
    req.once('error', (err: NodeJS.ErrnoException) => {
      if (['ENOENT', 'ECONNREFUSED', 'EACCES'].includes(err.code ?? '')) {
        reject(new SourceUnavailableError(`no Docker daemon answers at ${endpoint.description} (${err.code})`));
      } else reject(new PusshError('failed', `${endpoint.description}: ${err.message}`, { cause: err }));
    });
    req.end();
  });
}

async function errorText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return (JSON.parse(text) as { message?: string }).message ?? text;
  } catch {
    return text.trim() || `HTTP ${res.statusCode}`;
  }
}

export async function openDockerDaemon(endpoint: DockerEndpoint, ref: ImageRef): Promise<ImageSource> {
  const name = encodeURIComponent(ref.given);
  const { description } = endpoint;
  // Asked first so that a missing image is a quick 404 rather than an export that fails.
  const info = await get(endpoint, `/images/${name}/json`);
  if (info.statusCode === 404) {
    throw new PusshError('image-not-found', `${description}: no image ${ref.given} (${await errorText(info)})`);
  }
  if (info.statusCode !== 200) throw new PusshError('failed', `${description}: inspecting ${ref.given}: ${await errorText(info)}`);
  info.resume();
  const res = await get(endpoint, `/images/${name}/get`);
  if (res.statusCode !== 200) throw new PusshError('failed', `${description}: exporting ${ref.given}: ${await errorText(res)}`);
  return archiveSource(res, description, { image: ref });
}
