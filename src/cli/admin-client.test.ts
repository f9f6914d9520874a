// meshctl's client of the admin API: where the token comes from, and that it is never printed.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminClient } from './admin-client.js';

describe('AdminClient', () => {
  let server: Server;
  let port = 0;
  const seen: (string | undefined)[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise((r) => server.close(r)));

  it('takes the token from a --node URL\'s password, as the registry\'s Basic challenge does, and sends it as a bearer', async () => {
    expect(await new AdminClient(`http://layermesh:s3cr%2Ft@127.0.0.1:${port}`).get('/_mesh/v1/status')).toEqual({ ok: true });
    expect(seen.at(-1)).toBe('Bearer s3cr/t');
    await new AdminClient(`http://layermesh:ignored@127.0.0.1:${port}`, 'given').get('/_mesh/v1/status');
    expect(seen.at(-1)).toBe('Bearer given');
    await new AdminClient(`http://layermesh:100%@127.0.0.1:${port}`).get('/_mesh/v1/status'); // not percent-encoding: as given
    expect(seen.at(-1)).toBe('Bearer 100%');
  });

  it('never prints the token: not when nobody answers, not for a --node that is not an http URL', async () => {
    const closed = new AdminClient('http://layermesh:s3cret@127.0.0.1:9');
    await expect(closed.get('/_mesh/v1/status')).rejects.toThrow(/^no meshd answers at http:\/\/127\.0\.0\.1:9 /);
    await expect(closed.get('/')).rejects.toThrow(expect.objectContaining({ message: expect.not.stringContaining('s3cret') }));
    for (const node of ['layermesh:s3cret@web1:5000', 'web1:5000', 'not a url']) {
      expect(() => new AdminClient(node)).toThrow(/^--node expects http\(s\):\/\/HOST:PORT/);
    }
  });
});
