// The peer data plane's blob answers to patient peers (replication): one sender of a large blob at a time, and
// that count kept right when a peer leaves before its answer began.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { digestOf } from '../oci/digest.js';
import { MemoryStore } from '../store/memory-store.js';
import { putBlob } from '../store/store.js';
import { peerKey } from './peer-auth.js';
import { PeerClient } from './peer-client.js';
import { BLOB_PATH, PATIENT_HEADER } from './peer-protocol.js';
import { createPeerServer } from './peer-server.js';
import { Spools } from './spools.js';
import { cleanUp } from '../../test/helpers/cleanups.js';

const key = peerKey(new TextEncoder().encode('peer server test'));
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await cleanUp(cleanups);
});

it('answers a patient peer after another one left while waiting for the same blob: that one is no longer counted as sent to', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'peer-server-test-'));
  const store = new MemoryStore();
  const app = createPeerServer({ store, spools: await Spools.open(dir), membershipKey: key, selfId: 'node-a', log: pino({ level: 'silent' }), awaitCopyMs: 5_000 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => rm(dir, { recursive: true, force: true }), () => app.close());
  const peer = { id: 'node-a', url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
  const client = new PeerClient(key);
  const bytes = randomBytes(1 << 20);
  const path = `${BLOB_PATH}${digestOf(bytes)}`;
  const ask = (asker: string, signal: AbortSignal) => client.request(peer, path, { headers: { [PATIENT_HEADER]: asker }, signal });

  // A stand-in asked alone gives up quickly; the copy it waited for begins just after.
  await expect(ask('leaver', AbortSignal.timeout(200))).rejects.toThrow();
  await putBlob(store, bytes, digestOf(bytes));
  await new Promise((resolve) => setTimeout(resolve, 500)); // the server's wait finds it, after the asker left

  const res = await ask('taker', AbortSignal.timeout(5_000));
  expect(res.status, 'a later patient peer').toBe(200);
  expect(Buffer.concat(await res.body.toArray()).equals(bytes)).toBe(true);
});

it('logs requests without a membership proof now and then per address, not one line each', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'peer-server-test-'));
  const lines: { msg: string; url?: string; suppressed?: number }[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const app = createPeerServer({ store: new MemoryStore(), spools: await Spools.open(dir), membershipKey: key, selfId: 'node-a', log });
  await app.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => rm(dir, { recursive: true, force: true }), () => app.close());
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/${'x'.repeat(8000)}`;
  for (let i = 0; i < 50; i++) expect((await fetch(url)).status).toBe(401);
  const refused = lines.filter((l) => l.msg === 'peer request without a valid membership proof');
  expect(refused).toHaveLength(1);
  expect(refused[0].url!.length).toBeLessThanOrEqual(200);
});
