// The local Docker daemon: its image export API (`GET /images/{name}/get`, what `docker save` uses)
// gives a docker save archive, read like a docker-archive file.
import { request, type IncomingMessage } from 'node:http';
import { PusshError } from './errors.js';
import type { ImageRef } from './refs.js';
import { archiveSource } from './source-archive.js';
import type { ImageSource } from './source.js';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

/** The daemon's unix socket: DOCKER_HOST when it is `unix://…`, else the default. */
export function dockerSocket(env: NodeJS.ProcessEnv = process.env): string {
  const host = env.DOCKER_HOST;
  if (!host) return DEFAULT_DOCKER_SOCKET;
  if (host.startsWith('unix://')) return host.slice('unix://'.length);
  throw new PusshError('usage', `DOCKER_HOST=${host}: only a local daemon on a unix socket (unix://…) can be read from`);
}

/** The daemon is not there (no socket, nobody listening): a reason to try another source, not a failure. */
export class SourceUnavailableError extends PusshError {
  constructor(message: string) {
    super('image-not-found', message);
    this.name = 'SourceUnavailableError';
  }
}

function get(socketPath: string, path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', headers: { host: 'docker' } }, resolve);
    req.once('error', (err: NodeJS.ErrnoException) => {
      if (['ENOENT', 'ECONNREFUSED', 'EACCES'].includes(err.code ?? '')) {
        reject(new SourceUnavailableError(`no Docker daemon answers on ${socketPath} (${err.code})`));
      } else reject(err);
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

export async function openDockerDaemon(socketPath: string, ref: ImageRef): Promise<ImageSource> {
  const name = encodeURIComponent(ref.given);
  const description = `docker (${socketPath})`;
  // Asked first so that a missing image is a quick 404 rather than an export that fails.
  const info = await get(socketPath, `/images/${name}/json`);
  if (info.statusCode === 404) {
    throw new PusshError('image-not-found', `${description}: no image ${ref.given} (${await errorText(info)})`);
  }
  if (info.statusCode !== 200) throw new PusshError('failed', `${description}: inspecting ${ref.given}: ${await errorText(info)}`);
  info.resume();
  const res = await get(socketPath, `/images/${name}/get`);
  if (res.statusCode !== 200) throw new PusshError('failed', `${description}: exporting ${ref.given}: ${await errorText(res)}`);
  return archiveSource(res, description, { image: ref });
}
