// Swarm keys: the pre-shared key of a private libp2p network, in the format go-ipfs and js-libp2p share:
//   /key/swarm/psk/1.0.0/
//   /base16/
//   <64 hex digits>
// Every member of a fleet holds the same key; connections from anyone else fail before any protocol runs.
import { randomBytes } from 'node:crypto';
import { readSecretFile } from '../util/secret-file.js';

const HEADER = '/key/swarm/psk/1.0.0/';
const CODEC = '/base16/';

/** Contents of a new swarm key file (for `meshctl swarm-key generate`). */
export function generateSwarmKey(): string {
  return `${HEADER}\n${CODEC}\n${randomBytes(32).toString('hex')}\n`;
}

/**
 * Checks a swarm key file's contents and returns them in the exact form @libp2p/pnet parses
 * (its parser accepts only base16 and says nothing useful when the content is wrong).
 */
export function parseSwarmKey(content: string | Uint8Array, source = 'swarm key'): Uint8Array {
  const text = typeof content === 'string' ? content : Buffer.from(content).toString('utf8');
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length !== 3 || lines[0] !== HEADER) {
    throw new Error(`${source}: not a swarm key: expected three lines "${HEADER}", "${CODEC}", 64 hex digits`);
  }
  if (lines[1] !== CODEC) {
    throw new Error(`${source}: unsupported swarm key encoding "${lines[1]}" (only ${CODEC} is supported)`);
  }
  if (!/^[0-9a-fA-F]{64}$/.test(lines[2])) {
    throw new Error(`${source}: the key line must be 64 hex digits (32 bytes), got ${lines[2].length} characters`);
  }
  return new TextEncoder().encode(`${HEADER}\n${CODEC}\n${lines[2].toLowerCase()}`);
}

/** Reads and checks a swarm key file; one that every local user can read is refused. */
export async function readSwarmKey(path: string): Promise<Uint8Array> {
  return parseSwarmKey(await readSecretFile(path, 'swarm key'), `swarm key ${path}`);
}
