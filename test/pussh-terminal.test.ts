// pussh on a terminal (a pseudo-terminal from util-linux's `script`), through a real sshd to a real meshd: what
// the user's terminal is left with when they press Ctrl-C during a push.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { buildImage, type BuiltImage } from './helpers/oci-image.js';
import { startSshd, type Sshd } from './helpers/sshd.js';
import { waitFor } from './helpers/wait.js';
import { startAll } from './helpers/start-all.js';

const PUSSH = new URL('../dist/src/cli/pussh.js', import.meta.url).pathname;
const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';
const CTRL_C = '\x03';

let sshd: Sshd | undefined;
let remote: Meshd | undefined;
let image: BuiltImage | undefined;

beforeAll(async () => {
  image = buildImage({ layerSizes: [32 << 20], tag: '1' });
  await startAll([startSshd().then((s) => (sshd = s)), startMeshd(['--store', 'fs']).then((m) => (remote = m))]);
});

afterAll(async () => {
  remote?.proc.kill('SIGCONT');
  await Promise.allSettled([sshd?.stop(), remote?.stop()]);
  if (image) rmSync(image.dir, { recursive: true, force: true });
});

describe('pussh on a terminal', () => {
  it('gives the terminal its cursor back when interrupted with Ctrl-C mid-push, and exits 130', async () => {
    const args = [PUSSH, '-i', sshd!.keys.clientKey, '--no-host-key-check', '--remote-registry', remote!.host, '--from', `oci:${image!.dir}:1`, 'tools/app:1', sshd!.target];
    const command = ['exec', process.execPath, ...args].map((a) => `'${a}'`).join(' ');
    // script gives pussh a terminal for stdin and stdout; a Ctrl-C typed into it reaches pussh as SIGINT.
    const term = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let screen = '';
    term.stdout.on('data', (c: Buffer) => (screen += c.toString('utf8')));
    const exited = once(term, 'exit');
    try {
      // meshd stops still while the layer's upload is under way: the bars stand mid-push.
      await waitFor('the upload to begin', () => remote!.logs.some((l) => l.msg === 'upload started'), { timeoutMs: 30_000, intervalMs: 10 });
      remote!.proc.kill('SIGSTOP');
      // It may have stopped before its answer to the upload's start left (a loaded machine): it runs a moment at a
      // time until the bars stand, too short for the 32 MiB to arrive.
      await waitFor('the progress bars', async () => {
        if (screen.includes(HIDE_CURSOR) && /\/32 MiB/.test(screen)) return true;
        remote!.proc.kill('SIGCONT');
        await new Promise((r) => setTimeout(r, 20));
        remote!.proc.kill('SIGSTOP');
        return false;
      }, { timeoutMs: 30_000, intervalMs: 500 });
      term.stdin.write(CTRL_C);
      const [code] = await exited;
      expect(code).toBe(130);
      expect(screen).toMatch(/SIGINT: closing ssh tunnels/);
      expect(screen.lastIndexOf(SHOW_CURSOR), 'the cursor shown again after the bars hid it').toBeGreaterThan(screen.lastIndexOf(HIDE_CURSOR));
    } finally {
      term.kill('SIGKILL');
      remote!.proc.kill('SIGCONT');
    }
    expect(remote!.logs.some((l) => l.msg === 'manifest pushed'), 'the push did not finish').toBe(false);
  });
});
