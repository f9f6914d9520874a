// A peer request exactly as the real client sends it (method, path, headers with the membership proof,
// body), recorded by a local listener posing as the target's data plane in plain HTTP, so that a test can
// replay it elsewhere: what an attacker who had captured it would hold.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PeerClient, type PeerRequest } from '../../src/mirror/peer-client.js';

export interface RecordedRequest {
  method: string;
  path: string;
  /** As sent, minus what belongs to the connection (host, connection, content-length). */
  headers: Record<string, string>;
  body: Buffer;
}

export async function recordPeerRequest(membershipKey: Buffer, target: string, path: string, init: Omit<PeerRequest, 'signal'> = {}): Promise<RecordedRequest> {
  let recorded: RecordedRequest | undefined;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      recorded = { method: req.method!, path: req.url!, headers: ownHeaders(req.headers), body: Buffer.concat(chunks) };
      res.writeHead(404, { connection: 'close' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const res = await new PeerClient(membershipKey).request({ id: target, url: `http://127.0.0.1:${port}` }, path, { ...init, signal: AbortSignal.timeout(5000) });
    res.body.resume();
  } finally {
    server.close();
  }
  if (!recorded) throw new Error(`no request to ${path} was recorded`);
  return recorded;
}

function ownHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!['host', 'connection', 'content-length'].includes(name) && typeof value === 'string') out[name] = value;
  }
  return out;
}
