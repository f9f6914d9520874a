// Membership proofs: bound to the request, its body and the node it is for, and good once.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store.js';
import { AUTH_HEADER, peerKey, proof, ProofChecker } from './peer-auth.js';
import { SEQUENCE_PATH } from './peer-protocol.js';
import { createPeerServer } from './peer-server.js';
import { Spools } from './spools.js';

const key = peerKey(new TextEncoder().encode('fleet'));
const path = `/peer/v1/blobs/sha256:${'a'.repeat(64)}`;
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe('a membership proof', () => {
  it('is accepted once, by the node it was made for, for its method (HEAD as its GET) and within the clock skew', () => {
    const a = new ProofChecker(key, 'node-a');
    const b = new ProofChecker(key, 'node-b');
    const header = proof(key, { method: 'GET', path, target: 'node-a' });
    expect(b.verify({ method: 'GET', path }, header)).toBe(false);
    expect(a.verify({ method: 'POST', path }, header)).toBe(false);
    expect(a.verify({ method: 'GET', path: `${path}x` }, header)).toBe(false);
    expect(a.verify({ method: 'HEAD', path }, header)).toBe(true);
    expect(a.verify({ method: 'GET', path }, header)).toBe(false);
    const stale = proof(key, { method: 'GET', path, target: 'node-a' }, Date.now() - 120_000);
    expect(a.verify({ method: 'GET', path }, stale)).toBe(false);
    expect(a.verify({ method: 'GET', path }, proof(peerKey(undefined), { method: 'GET', path, target: 'node-a' }))).toBe(false);
  });

  it('is forgotten once expired, also behind a proof stamped ahead of the clock (which kept every later one remembered)', () => {
    const start = Date.now();
    const checker = new ProofChecker(key, 'node-a', 3);
    const made = (at: number) => proof(key, { method: 'GET', path, target: 'node-a' }, at);
    expect(checker.verify({ method: 'GET', path }, made(start + 59_000), start)).toBe(true);
    expect(checker.verify({ method: 'GET', path }, made(start), start)).toBe(true);
    expect(checker.verify({ method: 'GET', path }, made(start), start)).toBe(true);
    expect(checker.verify({ method: 'GET', path }, made(start), start), 'three remembered: full').toBe(false);
    // Two minutes on, the two stamped at the start expired; the one stamped ahead has not.
    expect(checker.verify({ method: 'GET', path }, made(start + 62_000), start + 62_000)).toBe(true);
    expect(checker.verify({ method: 'GET', path }, made(start + 62_000), start + 62_000)).toBe(true);
  });

  it('covers the body: a sequence request with another body, or sent twice, gets 401 and no byte', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'peer-auth-test-'));
    dirs.push(dir);
    const app = createPeerServer({ store: new MemoryStore(), spools: await Spools.open(dir), membershipKey: key, selfId: 'node-a', log: pino({ level: 'silent' }), awaitCopyMs: 10 });
    const body = JSON.stringify({ blobs: [{ digest: `sha256:${'b'.repeat(64)}`, size: 10 }] });
    const header = proof(key, { method: 'POST', path: SEQUENCE_PATH, target: 'node-a', body });
    const post = (payload: string) =>
      app.inject({ method: 'POST', url: SEQUENCE_PATH, headers: { [AUTH_HEADER]: header, 'content-type': 'application/json' }, payload });
    const other = JSON.stringify({ blobs: [{ digest: `sha256:${'c'.repeat(64)}`, size: 10 }] });
    expect((await post(other)).statusCode).toBe(401);
    const first = await post(body);
    expect(first.statusCode).toBe(404); // a member, asking for a blob this node does not hold
    const again = await post(body);
    expect(again.statusCode).toBe(401);
    await app.close();
  });
});
