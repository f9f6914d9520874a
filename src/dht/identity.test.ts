import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { loadOrCreateIdentity } from './identity.js';

const dir = await mkdtemp(join(tmpdir(), 'lm-identity-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

test('the identity is created once (mode 0600, Ed25519) and the same peer id comes back', async () => {
  const data = join(dir, 'data');
  const key = await loadOrCreateIdentity(data);
  expect(key.type).toBe('Ed25519');
  expect((await stat(join(data, 'peer.key'))).mode & 0o777).toBe(0o600);
  const again = await loadOrCreateIdentity(data);
  expect(peerIdFromPrivateKey(again).toString()).toBe(peerIdFromPrivateKey(key).toString());
});

test('a file that is not a key is an error, not a new identity', async () => {
  await writeFile(join(dir, 'peer.key'), 'not a key');
  await expect(loadOrCreateIdentity(dir)).rejects.toThrow(/is not a libp2p private key/);
});

test('an empty key file (a crash while it was written) gets a new identity, not a daemon that cannot start', async () => {
  const data = join(dir, 'empty');
  await loadOrCreateIdentity(data);
  await writeFile(join(data, 'peer.key'), '');
  const key = await loadOrCreateIdentity(data);
  expect(key.type).toBe('Ed25519');
  expect((await stat(join(data, 'peer.key'))).mode & 0o777).toBe(0o600);
  expect(peerIdFromPrivateKey(await loadOrCreateIdentity(data)).toString()).toBe(peerIdFromPrivateKey(key).toString());
});
