// Joining the mesh when the store cannot be listed: the daemon cannot start, and nothing it began keeps running.
import '../polyfill.js';
import { connect } from 'node:net';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store.js';
import type { BlobInfo } from '../store/store.js';
import { freePort } from '../../test/helpers/ports.js';
import { parseConfig } from './config.js';
import { joinMesh } from './mesh.js';

class Unlistable extends MemoryStore {
  override async *blobs(): AsyncGenerator<BlobInfo> {
    throw new Error('containerd did not answer the listing');
  }
}

it('stops libp2p again when the store cannot be listed: its port is let go, and the daemon can exit', async () => {
  const port = await freePort();
  const config = parseConfig(['--p2p-listen', `/ip4/127.0.0.1/tcp/${port}`, '--peer-addr', '127.0.0.1:0', '--node-name', 'unlistable']);
  await expect(joinMesh(config, new Unlistable(), pino({ level: 'silent' }), { privateKey: await generateKeyPair('Ed25519'), dataPlanePort: 1 }))
    .rejects.toThrow('containerd did not answer the listing');
  const refused = await new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => resolve(socket.destroy() && false));
    socket.once('error', () => resolve(true));
  });
  expect(refused, 'the p2p port is closed').toBe(true);
});
