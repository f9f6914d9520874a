// One request to a meshd's peer data plane as a test client writes it by hand (its own proof header,
// or none, or a stale one): over TLS when the URL says https, without checking who answers, since these
// tests are about what the server accepts. The real client, which does check, is src/mirror/peer-client.ts.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface PeerAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface PeerFetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export function peerFetch(url: string, init: PeerFetchInit = {}): Promise<PeerAnswer> {
  const secure = url.startsWith('https:');
  const options = { method: init.method ?? 'GET', headers: init.headers, ...(secure ? { rejectUnauthorized: false } : {}) };
  return new Promise((resolve, reject) => {
    const req = (secure ? httpsRequest : httpRequest)(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(init.body);
  });
}
