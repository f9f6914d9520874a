// `meshctl df | prune | rm`: what a node's disk holds and why, and removing from it (or from every node).
import type { Command } from 'commander';
import type { DiskUsage, EvictionReport } from '../api/admin-types.js';
import type { AdminClient } from './admin-client.js';
import type { Print } from './mirror-config/command.js';
import { printable, table } from './table.js';

/** 1536 → 1.5KiB. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  for (; n >= 1024 && i < units.length - 1; i++) n /= 1024;
  return `${i === 0 ? n : n.toFixed(1)}${units[i]}`;
}

function formatUsage(u: DiskUsage): string {
  const rows = [
    ['pushed', u.pushed, 'images this host\'s users pushed'],
    ['pulled', u.pulled, 'images this host\'s users pulled (containerd records meshd did not make)'],
    ['replicated', u.replicated, 'images replication copied here'],
    ['cache', u.cache, 'blobs no image references (the mirror\'s cache)'],
    ['pinned', u.pinned, 'images running containers were created from'],
    ['total', u.total, ''],
  ] as const;
  const lines = [table(['CATEGORY', 'BYTES', ''], rows.map(([k, v, what]) => [k, bytes(v), what]))];
  if (u.filesystem) lines.push('', `filesystem: ${bytes(u.filesystem.size)}, ${bytes(u.filesystem.free)} free`);
  if (u.watermarks) lines.push(`watermarks: ${bytes(u.watermarks.measured)} measured; evicts above ${bytes(u.watermarks.high)} down to ${bytes(u.watermarks.low)}`);
  if (u.images.length) {
    lines.push('', table(['IMAGE', 'ORIGIN', 'BYTES', 'LAST USE'],
      u.images.map((i) => [i.name, i.pinned ? `${i.origin},pinned` : i.origin, bytes(i.bytes), i.lastUse])));
  }
  return lines.join('\n');
}

function formatReport(r: EvictionReport): string {
  const lines = r.evicted.map((e) => `removed ${printable(e.image)} (${bytes(e.bytes)}): ${e.reason}`);
  lines.push(`freed ${bytes(r.freed)}`);
  if (r.kept) lines.push(`kept: ${r.kept}`);
  if (r.published) lines.push('asked every node of the mesh to remove it (each says in its log what it did)');
  return lines.join('\n');
}

export function addDiskCommands(program: Command, client: () => AdminClient, print: Print): void {
  program
    .command('df')
    .description('bytes this node holds: pushed, pulled, replicated, mirror cache, pinned by containers; each blob counted once')
    .action(async () => {
      const usage = await client().get<DiskUsage>('/_mesh/v1/df');
      print(usage, () => formatUsage(usage));
    });

  program
    .command('prune')
    .description('evict what the mesh brought down to --disk-low now (needs the write privilege)')
    .action(async () => {
      const report = await client().request<EvictionReport>('POST', '/_mesh/v1/prune');
      print(report, () => formatReport(report));
    });

  program
    .command('rm')
    .argument('<image>', 'an image name, e.g. app:1 or registry.example/app:1')
    .description('remove an image from this node, or with --mesh from every node (needs the write privilege); exit status 1 when nothing was removed and nothing sent')
    .option('--mesh', 'ask every node of the mesh to remove it')
    .action(async (image: string, cmd: { mesh?: boolean }) => {
      const report = await client().request<EvictionReport>('DELETE', '/_mesh/v1/images', { name: image, ...(cmd.mesh && { mesh: '1' }) });
      print(report, () => formatReport(report));
      if (report.evicted.length === 0 && !report.published) process.exitCode = 1;
    });
}
