// The node's libp2p identity: an Ed25519 key kept in <dataDir>/peer.key, so the peer id survives restarts
// (peers, bootstrap lists and provider records refer to it).
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { writeAtomically } from '../util/atomic-file.js';

export const PEER_KEY_FILE = 'peer.key';

/** Loads the key in `<dataDir>/peer.key`, or creates it (mode 0600) when the file does not exist. */
export async function loadOrCreateIdentity(dataDir: string): Promise<PrivateKey> {
  const file = join(dataDir, PEER_KEY_FILE);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read peer key ${file}`, { cause: err });
    return createIdentity(dataDir, file);
  }
  if (bytes.length === 0) {
    // A crash while an older meshd wrote it in place: no key was ever kept, so no peer id is lost.
    await rm(file, { force: true });
    return createIdentity(dataDir, file);
  }
  try {
    return privateKeyFromProtobuf(bytes);
  } catch (err) {
    throw new Error(`peer key ${file} is not a libp2p private key (protobuf); move it away to create a new identity`, {
      cause: err,
    });
  }
}

async function createIdentity(dataDir: string, file: string): Promise<PrivateKey> {
  const key = await generateKeyPair('Ed25519');
  await mkdir(dataDir, { recursive: true });
  // Whole or not at all (a crash must not leave an empty key), never over a key another process created meanwhile.
  try {
    await writeAtomically(file, privateKeyToProtobuf(key), { mode: 0o600, exclusive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateIdentity(dataDir);
    throw new Error(`cannot write peer key ${file}`, { cause: err });
  }
  return key;
}
