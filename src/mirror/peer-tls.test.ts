// The data plane over TLS, real sockets on loopback: the certificate carries the identity key, the client
// reaches only the peer id it meant (an impostor gets no request byte), and ends that disagree on
// --peer-plaintext fail with a reason.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { connect, type AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { digestOf } from '../oci/digest.js';
import { MemoryStore } from '../store/memory-store.js';
import { putBlob } from '../store/store.js';
import { peerKey } from './peer-auth.js';
import { PeerClient, WrongPeerError } from './peer-client.js';
import { BLOB_PATH } from './peer-protocol.js';
import { createPeerServer } from './peer-server.js';
import { peerIdOfCertificate, peerTls, type PeerTls } from './peer-tls.js';
import { Spools } from './spools.js';
import { cleanUp } from '../../test/helpers/cleanups.js';

const key = peerKey(new TextEncoder().encode('tls test'));
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await cleanUp(cleanups);
});

const identity = async () => peerTls(await generateKeyPair('Ed25519'));

/** A real data plane holding one blob; `tls` absent: plain HTTP. Its warnings are collected. */
async function dataPlane(tls: PeerTls | undefined, selfId = tls?.id ?? 'plain-node') {
  const dir = await mkdtemp(join(tmpdir(), 'peer-tls-test-'));
  const warnings: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line).msg) });
  const store = new MemoryStore();
  const bytes = Buffer.from('a blob only members may read, and only from the node they meant');
  const digest = digestOf(bytes);
  await putBlob(store, bytes, digest);
  const app = createPeerServer({ store, spools: await Spools.open(dir), membershipKey: key, selfId, tls, log });
  await app.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => rm(dir, { recursive: true, force: true }), () => app.close());
  const { port } = app.server.address() as AddressInfo;
  return { port, digest, bytes, warnings };
}

async function read(client: PeerClient, id: string, url: string, path: string): Promise<{ status: number; body: Buffer }> {
  const res = await client.request({ id, url }, path, { signal: AbortSignal.timeout(5000) });
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c as Buffer);
  return { status: res.status, body: Buffer.concat(chunks) };
}

describe('the data plane certificate', () => {
  it('holds the identity key itself, and names its peer id', async () => {
    const privateKey = await generateKeyPair('Ed25519');
    const tls = await peerTls(privateKey);
    const cert = new X509Certificate(tls.cert);
    expect(cert.publicKey.asymmetricKeyType).toBe('ed25519');
    expect(peerIdOfCertificate(cert)).toBe(tls.id);
    expect(cert.subject).toContain(`CN=${tls.id}`);
    expect(cert.checkPrivateKey(createPrivateKey(tls.key))).toBe(true);
    expect(Buffer.from(cert.publicKey.export({ format: 'jwk' }).x!, 'base64url')).toEqual(Buffer.from(privateKey.publicKey.raw));
  });
});

describe('a member reached over TLS', () => {
  it('is read when it is the peer id asked for, over TLS 1.3', async () => {
    const server = await identity();
    const plane = await dataPlane(server);
    const client = new PeerClient(key, await identity());
    const got = await read(client, server.id, `https://127.0.0.1:${plane.port}`, `${BLOB_PATH}${plane.digest}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(plane.bytes);
  });

  it('is refused, before any request byte, when its key is another peer id', async () => {
    const expected = await identity();
    const impostor = await identity();
    // A TLS server with the impostor's certificate that records every byte a client sends after the handshake.
    const received: Buffer[] = [];
    const server = createTlsServer({ key: impostor.key, cert: impostor.cert, minVersion: 'TLSv1.3' }, (socket) => {
      socket.on('data', (c: Buffer) => received.push(c));
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const { port } = server.address() as AddressInfo;
    const client = new PeerClient(key, await identity());
    const asked = read(client, expected.id, `https://127.0.0.1:${port}`, `${BLOB_PATH}sha256:${'a'.repeat(64)}`);
    await expect(asked).rejects.toThrow(WrongPeerError);
    await expect(asked).rejects.toThrow(`is ${impostor.id}, not ${expected.id}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(Buffer.concat(received)).toHaveLength(0);
  });

  it('keeps a connected member\'s agent, and not those of the hundreds of members it can no longer reach', async () => {
    const member = await identity();
    const plane = await dataPlane(member);
    const client = new PeerClient(key, await identity());
    const url = `https://127.0.0.1:${plane.port}`;
    expect((await read(client, member.id, url, `${BLOB_PATH}${plane.digest}`)).status).toBe(200);
    const gone = createTlsServer();
    await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
    const { port } = gone.address() as AddressInfo;
    await new Promise((resolve) => gone.close(resolve));
    for (let i = 0; i < 200; i++) {
      await expect(read(client, `gone-${i}`, `https://127.0.0.1:${port}`, `${BLOB_PATH}${plane.digest}`)).rejects.toThrow(/ECONNREFUSED/);
    }
    expect(client.agents).toBeLessThanOrEqual(65);
    expect((await read(client, member.id, url, `${BLOB_PATH}${plane.digest}`)).status).toBe(200);
  });

  it('is refused when it is a real data plane of another member', async () => {
    const other = await identity();
    const plane = await dataPlane(other);
    const client = new PeerClient(key, await identity());
    await expect(read(client, (await identity()).id, `https://127.0.0.1:${plane.port}`, `${BLOB_PATH}${plane.digest}`)).rejects.toThrow(WrongPeerError);
  });
});

describe('a connection that never finishes its TLS handshake', () => {
  it('is dropped within seconds, not held for Node\'s two minutes', async () => {
    const { port } = await dataPlane(await identity());
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const started = Date.now();
    await new Promise((resolve) => socket.once('close', resolve));
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 20_000);
});

describe('ends that disagree on --peer-plaintext', () => {
  it('fail with a reason: a TLS client and a plaintext server', async () => {
    const plane = await dataPlane(undefined);
    const client = new PeerClient(key, await identity());
    await expect(read(client, 'plain-node', `https://127.0.0.1:${plane.port}`, `${BLOB_PATH}${plane.digest}`))
      .rejects.toThrow(/does not speak TLS.*--peer-plaintext/);
  });

  it('fail with a reason, logged by the TLS server: a plaintext client', async () => {
    const server = await identity();
    const plane = await dataPlane(server);
    const client = new PeerClient(key);
    await expect(read(client, server.id, `http://127.0.0.1:${plane.port}`, `${BLOB_PATH}${plane.digest}`)).rejects.toThrow(/--peer-plaintext/);
    expect(plane.warnings.some((w) => /plain HTTP on the TLS peer data plane/.test(w))).toBe(true);
  });
});
