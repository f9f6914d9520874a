// Never open by accident: meshd started with its defaults and no swarm key (the README's first command) keeps its
// mesh listeners on loopback; named, or with a swarm key, they listen where they are told. Run in a network
// namespace of its own, where the default ports are free.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ensurePackages } from './helpers/apt.js';
import { meshdCommand, spawnMeshd } from './helpers/meshd.js';
import { run } from './helpers/run.js';
import { builtEntryPoints } from './fleet/layout.js';

const NS = `lm-listen-${randomUUID().slice(0, 8)}`;
let dir: string;

beforeAll(async () => {
  await ensurePackages({ ip: 'iproute2' });
  dir = await mkdtemp(join(tmpdir(), 'mesh-listeners-'));
  await run('ip', ['netns', 'add', NS]);
  await run('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);
});

afterAll(async () => {
  await run('ip', ['netns', 'del', NS]).catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** meshd in the namespace with these flags; its ready line and warnings, then stopped. */
async function started(args: string[]): Promise<{ p2p: string[]; peer: string; listening: string[]; warnings: string[] }> {
  const m = spawnMeshd(['--store', 'fs', '--data-dir', join(dir, randomUUID()), ...args], { command: ['ip', 'netns', 'exec', NS, ...meshdCommand(builtEntryPoints().meshd)] });
  try {
    const ready = await m.ready;
    // The sockets themselves: in a namespace with loopback alone, 0.0.0.0 would be announced as 127.0.0.1 too.
    const listening = (await run('ip', ['netns', 'exec', NS, 'ss', '-ltnH'])).trim().split('\n').map((line) => line.split(/\s+/)[3]);
    return { p2p: ready.p2p ?? [], peer: ready.peer ?? '', listening, warnings: m.logs.filter((l) => l.level === 40).map((l) => String(l.msg)) };
  } finally {
    m.proc.kill('SIGTERM');
    await m.exited;
  }
}

it('keeps the mesh on loopback with its defaults and no swarm key, and says how to open it', async () => {
  const { p2p, peer, listening, warnings } = await started([]);
  expect(listening.filter((address) => !address.startsWith('127.0.0.1:')), 'listening beyond loopback').toEqual([]);
  expect(p2p.length).toBeGreaterThan(0);
  for (const address of p2p) expect(address).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/4001\//);
  expect(peer).toBe('https://127.0.0.1:5001');
  expect(warnings.some((w) => w.startsWith('no --swarm-key: the mesh listens on loopback only'))).toBe(true);
});

it('listens where it is told without a swarm key, and warns that anyone may join', async () => {
  await run('ip', ['netns', 'exec', NS, 'ip', 'addr', 'add', '10.253.0.1/24', 'dev', 'lo']).catch(() => undefined);
  const { p2p, peer, warnings } = await started(['--p2p-listen', '/ip4/10.253.0.1/tcp/4001', '--peer-addr', '10.253.0.1:5001']);
  expect(p2p.every((a) => a.startsWith('/ip4/10.253.0.1/tcp/4001/'))).toBe(true);
  expect(peer).toBe('https://10.253.0.1:5001');
  expect(warnings.some((w) => w.startsWith('no --swarm-key: ANYONE who can reach the p2p port'))).toBe(true);
});
