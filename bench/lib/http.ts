// Minimal HTTP client for setting up a benchmark: uploads a blob from a file, asks simple questions.
import { createReadStream } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream/promises';

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export function request(method: string, url: string, opts: { file?: string; size?: number; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.file) {
      headers['content-type'] = 'application/octet-stream';
      headers['content-length'] = String(opts.size);
    }
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    if (opts.file) {
      // A server may answer (and close) before reading the body; the answer is what matters then.
      pipeline(createReadStream(opts.file, { highWaterMark: 1 << 20 }), req).catch(() => {});
    } else {
      req.end();
    }
  });
}

/**
 * Puts the blob stored in `file` into `repo`: a monolithic POST ?digest= when the registry supports it
 * (OCI spec, optional), else POST for a session and one monolithic PUT (what distribution 2.8 needs).
 * `monolithicPost: false` goes straight to the session: distribution resets the connection while a
 * large POST body is still being sent (seen with 1 GiB), which fails the push.
 */
export async function pushBlob(base: string, repo: string, file: string, size: number, digest: string, { monolithicPost = true } = {}): Promise<'POST' | 'POST+PUT'> {
  if (monolithicPost) {
    const post = await request('POST', `${base}/v2/${repo}/blobs/uploads/?digest=${digest}`, { file, size });
    if (post.status === 201) return 'POST';
    if (post.status !== 202 || !post.headers.location) throw new Error(`POST blob upload to ${base}: ${post.status} ${post.body}`);
  }
  // A body sent above was ignored; open a fresh session so no half-state is reused.
  const start = await request('POST', `${base}/v2/${repo}/blobs/uploads/`);
  if (start.status !== 202 || !start.headers.location) throw new Error(`POST blob upload to ${base}: ${start.status} ${start.body}`);
  const location = new URL(start.headers.location, base);
  location.searchParams.set('digest', digest);
  const put = await request('PUT', location.href, { file, size });
  if (put.status !== 201) throw new Error(`PUT blob to ${base}: ${put.status} ${put.body}`);
  return 'POST+PUT';
}

/** What a manifest request must accept: distribution 2.8 answers 404 for an OCI manifest not asked for. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export async function expectStatus(method: string, url: string, status: number, headers?: Record<string, string>): Promise<void> {
  const res = await request(method, url, { headers });
  if (res.status !== status) throw new Error(`${method} ${url}: expected ${status}, got ${res.status} ${res.body}`);
}
