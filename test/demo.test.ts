// `npm run demo` as CI runs it: the built program, not a terminal, in both of its modes. It must end with
// its success line and exit 0, and leave nothing behind: no fleet (namespaces mode), no meshd and no temp
// file of its own (loopback mode; its temp files all go below a TMPDIR made for the run).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { leftovers } from './fleet/cleanup.js';
import { builtEntryPoints, repoRoot } from './fleet/layout.js';
import { pidsMentioning } from './fleet/processes.js';

const DEMO = join(repoRoot(), 'dist/test/demo/main.js');
const root = process.getuid?.() === 0;

async function runDemo(args: string[], tmp: string): Promise<{ code: number | null; stdout: string; stderr: string; seconds: number }> {
  builtEntryPoints(); // a clear error when dist/ is missing
  const started = performance.now();
  const child = spawn(process.execPath, [DEMO, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: tmp } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  return { code, stdout, stderr, seconds: (performance.now() - started) / 1000 };
}

describe('npm run demo', () => {
  let tmp: string | undefined;
  afterEach(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it.runIf(root)('runs on three namespaced hosts and removes its fleet', async () => {
    tmp = mkdtempSync(join(tmpdir(), 'demo-test-'));
    const res = await runDemo([], tmp);
    expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(0);
    expect(res.stdout).toMatch(/^demo: OK — the image pushed to h1 is on h2 and h3 \([\d.]+ MiB in [\d.]+ s\), who-has names all three/m);
    // No redraw codes in a log.
    expect(res.stdout).not.toContain('\x1b[');
    const run = /^ {6}fleet ([0-9a-f]{4}): 3 network namespaces/m.exec(res.stdout)?.[1];
    expect(run, res.stdout).toBeDefined();
    expect(await leftovers(run!)).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
    console.log(`demo (namespaces) took ${res.seconds.toFixed(1)} s`);
  }, 180_000);

  it('runs on three loopback meshd processes with --loopback and removes them and its files', async () => {
    tmp = mkdtempSync(join(tmpdir(), 'demo-test-'));
    const res = await runDemo(['--loopback'], tmp);
    expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(0);
    expect(res.stdout).toContain('3 meshd processes on 127.0.0.1');
    expect(res.stdout).toMatch(/^demo: OK — the image pushed to h1 is on h2 and h3 \([\d.]+ MiB in [\d.]+ s\), who-has names all three/m);
    expect(await pidsMentioning(tmp)).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
    console.log(`demo (loopback) took ${res.seconds.toFixed(1)} s`);
  }, 120_000);
});
