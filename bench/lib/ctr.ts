// ctr as the benchmarks drive it: timed under /usr/bin/time, and a namespace removed with what is in it.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { ctr } from '../../test/helpers/containerd.js';

/** `ctr` under /usr/bin/time: wall seconds measured here, the client's CPU from time(1). */
export async function timedCtr(socket: string, args: string[], timeFile: string): Promise<{ seconds: number; clientCpu: number }> {
  const child = spawn('/usr/bin/time', ['-o', timeFile, '-f', '%U %S', 'ctr', '--address', socket, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const t0 = process.hrtime.bigint();
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (code !== 0) throw new Error(`ctr ${args.join(' ')} exited with ${code}: ${stderr.trim()}`);
  const [user, sys] = (await readFile(timeFile, 'utf8')).trim().split(/\s+/).slice(-2).map(Number);
  return { seconds, clientCpu: user + sys };
}

/** Removes a namespace and what is in it (images, leases, then the content and snapshots containerd's GC frees). */
export async function dropNamespace(socket: string, ns: string): Promise<void> {
  const lines = async (args: string[]) => (await ctr(socket, ['-n', ns, ...args]).catch(() => '')).split('\n').map((l) => l.trim()).filter(Boolean);
  const images = await lines(['images', 'ls', '-q']);
  if (images.length) await ctr(socket, ['-n', ns, 'images', 'rm', '--sync', ...images]).catch(() => '');
  const leases = await lines(['leases', 'ls', '-q']);
  if (leases.length) await ctr(socket, ['-n', ns, 'leases', 'rm', '--sync', ...leases]).catch(() => '');
  const content = await lines(['content', 'ls', '-q']);
  if (content.length) await ctr(socket, ['-n', ns, 'content', 'rm', ...content]).catch(() => '');
  await ctr(socket, ['namespaces', 'rm', ns]).catch(() => ''); // refused if anything is left: harmless
}
