#!/usr/bin/env node
// meshctl: ask a LayerMesh node what the mesh holds.
import { realpathSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { generateSwarmKey } from '../dht/swarm-key.js';
import { isConnected } from '../dht/router.js';
import type { ImageEntry, MeshImageRow, NodeStatus, PeerEntry, WhoHasAnswer, WhoHasEntry } from '../api/admin-types.js';
import { AdminClient } from './admin-client.js';
import { addMirrorCommand } from './mirror-config/command.js';
import { addDiskCommands } from './disk-commands.js';
import { age, ms, table } from './table.js';

/** The command tree; exported so tests can check command lines against it (see test/compose.test.ts). */
export const program = new Command('meshctl')
  // Usage errors exit 2, not commander's 1: 1 says "nobody has it" (who-has) and "nothing removed" (rm).
  .exitOverride()
  .description('Ask a LayerMesh node what the mesh holds')
  .addOption(new Option('--node <url>', 'the daemon to ask (its registry listener)').env('MESHCTL_NODE').default('http://127.0.0.1:5000'))
  .addOption(new Option('--token <token>', 'the node\'s registry token, when asking it from another host').env('MESHCTL_TOKEN'))
  .option('--json', 'machine-readable output');

const opts = () => program.opts<{ node: string; token?: string; json?: boolean }>();
const client = () => new AdminClient(opts().node, opts().token);
const print = (json: unknown, human: () => string) => console.log(opts().json ? JSON.stringify(json) : human());

program
  .command('who-has')
  .argument('<key>', 'a digest (sha256:<hex>) or an image (registry/repo:tag)')
  .description('peers that hold a digest or image, nearest first (for an image: the digest each holds, and the push it follows); '
    + 'exit status 1 when nobody has it')
  .action(async (key: string) => {
    const res = await client().get<WhoHasAnswer>('/_mesh/v1/who-has', { key });
    print(res, () => res.providers.length === 0 ? `nobody has ${key}` : whoHasTable(res.providers));
    if (res.providers.length === 0) process.exitCode = 1;
  });

function whoHasTable(providers: WhoHasEntry[]): string {
  const peer = (p: WhoHasEntry) => (p.self ? `${p.id} (this node)` : p.id);
  if (!providers.some((p) => p.digest)) {
    return table(['PEER', 'NAME', 'RTT', 'ADDRESSES'], providers.map((p) => [peer(p), p.name ?? '', ms(p.rttMs), p.addrs.join(' ')]));
  }
  const nameOf = (id: string) => providers.find((p) => p.id === id)?.name ?? id;
  const pushed = (p: WhoHasEntry) => (p.push ? `${age(p.push.clock)} to ${nameOf(p.push.node)}` : '-');
  return table(['PEER', 'NAME', 'RTT', 'DIGEST', 'PUSHED', 'ADDRESSES'],
    providers.map((p) => [peer(p), p.name ?? '', ms(p.rttMs), p.digest ?? '-', pushed(p), p.addrs.join(' ')]));
}

program
  .command('peers')
  .description('the members this node knows (connected peers first), and how many keys each announces')
  .action(async () => {
    const peers = await client().get<PeerEntry[]>('/_mesh/v1/peers');
    print(peers, () => table(['PEER', 'NAME', 'RTT', 'KEYS', 'ADDRESSES'],
      peers.map((p) => [p.id, p.info?.name ?? '', isConnected(p) ? ms(p.rttMs) : 'not connected', p.keys === undefined ? '-' : String(p.keys), p.addrs.join(' ')])));
  });

program
  .command('ls')
  .description('images this node holds; with --mesh, images across the mesh, the nodes that hold them and those still fetching them, '
    + 'and names held under different digests (a conflict, until every node follows the newest push)')
  .option('--mesh', 'ask every connected node')
  .action(async (cmd: { mesh?: boolean }) => {
    if (!cmd.mesh) {
      const images = await client().get<ImageEntry[]>('/_mesh/v1/images');
      return print(images, () => table(['IMAGE', 'DIGEST'], images.map((i) => [i.name, i.digest])));
    }
    const rows = await client().get<MeshImageRow[]>('/_mesh/v1/images', { mesh: '1' });
    const percent = (f: { bytes: number; total: number }) => `${f.total ? Math.floor((100 * f.bytes) / f.total) : 0}%`;
    // A name held under two digests shows which push wins (see docs/replication.md).
    const conflict = (r: MeshImageRow) => (r.conflict === 'newest' ? 'CONFLICT: newest push' : r.conflict === 'older' ? 'CONFLICT: older push' : '-');
    print(rows, () => table(['IMAGE', 'DIGEST', 'COMPLETE ON', 'FETCHING', 'CONFLICT'], rows.map((r) => [
      r.name,
      r.digest,
      r.nodes.map((n) => n.name).join(',') || '-',
      (r.fetching ?? []).map((f) => `${f.name} ${percent(f)}`).join(',') || '-',
      conflict(r),
    ])));
  });

program
  .command('status')
  .description('identity, listeners, store and announcements of the node')
  .action(async () => {
    const s = await client().get<NodeStatus>('/_mesh/v1/status');
    print(s, () => Object.entries(s).map(([k, v]) => `${k.padEnd(14)} ${typeof v === 'object' ? JSON.stringify(v) : v ?? '-'}`).join('\n'));
  });

program
  .command('limit')
  .description('bandwidth limits of the node (bytes per second); with options, changes them now and across restarts')
  .option('--upload <rate>', 'what its data plane sends, e.g. 50MB; off for none')
  .option('--download <rate>', 'what it fetches from peers and upstream registries')
  .option('--replication <rate>', 'background replication alone, within the download limit')
  .action(async (cmd: Record<'upload' | 'download' | 'replication', string | undefined>) => {
    const changes = Object.fromEntries(Object.entries(cmd).filter(([, v]) => v !== undefined)) as Record<string, string>;
    const limits = Object.keys(changes).length > 0
      ? await client().request<Record<string, number>>('PUT', '/_mesh/v1/limits', changes)
      : await client().get<Record<string, number>>('/_mesh/v1/limits');
    const rate = (n?: number) => (n === undefined ? 'none' : `${(n / 1e6).toFixed(n % 1e6 ? 1 : 0)} MB/s`);
    print(limits, () => ['upload', 'download', 'replication'].map((k) => `${k.padEnd(12)} ${rate(limits[k])}`).join('\n'));
  });

program
  .command('swarm-key')
  .description('fleet membership keys')
  .command('generate')
  .description('a new swarm key, written to FILE (readable by its owner only) or printed; give the same file to every meshd of the fleet (--swarm-key FILE)')
  .argument('[file]', 'where to write it; an existing file is never overwritten')
  .action(async (file?: string) => {
    if (!file) return void process.stdout.write(generateSwarmKey());
    await writeFile(file, generateSwarmKey(), { mode: 0o600, flag: 'wx' });
  });

addMirrorCommand(program, print);
addDiskCommands(program, client, print);

// Runs only as the command (directly or through the npm bin symlink), not when a test imports the program.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  program.parseAsync().catch((err: Error) => {
    // Commander has said what was wrong with the command line (or printed --help: exit 0).
    if (err instanceof CommanderError) return void (process.exitCode = err.exitCode === 0 ? 0 : 2);
    console.error(`meshctl: ${err.message}`);
    process.exitCode = 2;
  });
}
