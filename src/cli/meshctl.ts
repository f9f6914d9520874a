#!/usr/bin/env node
// meshctl: inspect a LayerMesh node.
import { Command, Option } from 'commander';

interface ImageRow {
  name: string;
  digest: string;
  mediaType: string;
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Every tagged image the node's registry serves, with its manifest digest. */
async function listImages(registry: string): Promise<ImageRow[]> {
  const { repositories } = await getJson<{ repositories: string[] }>(`${registry}/v2/_catalog`);
  const rows: ImageRow[] = [];
  for (const repo of repositories) {
    const { tags } = await getJson<{ tags: string[] }>(`${registry}/v2/${repo}/tags/list`);
    for (const tag of tags) {
      const head = await fetch(`${registry}/v2/${repo}/manifests/${tag}`, { method: 'HEAD' });
      if (!head.ok) continue; // untagged between the two calls
      rows.push({ name: `${repo}:${tag}`, digest: head.headers.get('docker-content-digest')!, mediaType: head.headers.get('content-type')! });
    }
  }
  return rows;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

const program = new Command('meshctl')
  .description('Inspect a LayerMesh node')
  .addOption(new Option('--registry <url>', 'the node\'s registry').env('MESHCTL_REGISTRY').default('http://127.0.0.1:5000'))
  .option('--json', 'machine-readable output');

program
  .command('ls')
  .description('images this node holds')
  .action(async () => {
    const { registry, json } = program.opts<{ registry: string; json?: boolean }>();
    const rows = await listImages(registry.replace(/\/$/, ''));
    if (json) console.log(JSON.stringify(rows));
    else console.log(table([['IMAGE', 'DIGEST'], ...rows.map((r) => [r.name, r.digest])]));
  });

program.parseAsync().catch((err: Error) => {
  console.error(`meshctl: ${err.message}`);
  process.exitCode = 2;
});
