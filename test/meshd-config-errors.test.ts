// meshd started with a configuration it cannot use: a clear line naming what to fix, and an exit status of its own,
// which the shipped unit does not restart for (a restart would fail the same way). What may mend itself (a port
// another process holds for now) exits 1, which the unit restarts.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './fleet/layout.js';
import { loopbackListeners, spawnMeshd } from './helpers/meshd.js';
import { listenOnLoopback } from './helpers/ports.js';

/** The exit status for which the shipped unit does not restart meshd. */
function noRestartStatus(): number {
  const unit = readFileSync(join(repoRoot(), 'config/meshd.service'), 'utf8');
  const line = /^RestartPreventExitStatus=(\d+)$/m.exec(unit);
  expect(line, 'the unit names a status it does not restart for').not.toBeNull();
  return Number(line![1]);
}

describe('meshd with a configuration it cannot use', () => {
  it('names --log-level when MESHD_LOG_LEVEL is not a level it knows, instead of crashing with a stack', async () => {
    const meshd = spawnMeshd(['--store', 'fs', '--data-dir', '/nonexistent/never-made'], { env: { ...process.env, MESHD_LOG_LEVEL: 'verbose' } });
    await expect(meshd.ready).rejects.toThrow(/'--log-level <level>' value 'verbose' from env 'MESHD_LOG_LEVEL' is invalid\. Allowed choices are trace, debug, info, warn, error/);
    expect(await meshd.exited).toBe(noRestartStatus());
  });

  it('names a mistyped flag in one log line and exits with the status the unit does not restart for', async () => {
    const meshd = spawnMeshd(['--store', 'fs', '--data-dir', '/nonexistent/never-made', '--registy-addr', '127.0.0.1:0']);
    await expect(meshd.ready).rejects.toThrow(/unknown option '--registy-addr'.*\(Did you mean --registry-addr\?\)/);
    expect(await meshd.exited).toBe(noRestartStatus());
    expect(meshd.logs.filter((l) => l.level === 60).map((l) => (l.err as { message: string }).message))
      .toEqual(["unknown option '--registy-addr'\n(Did you mean --registry-addr?) (meshd --help lists the options)"]);
  });

  it('exits with the status the unit does not restart for when a file the configuration names is unusable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshd-config-'));
    const key = join(dir, 'swarm.key');
    try {
      writeFileSync(key, 'not a key\n', { mode: 0o600 });
      const meshd = spawnMeshd(['--store', 'fs', '--data-dir', dir, '--swarm-key', key]);
      await expect(meshd.ready).rejects.toThrow(/swarm key .*not a swarm key/);
      expect(await meshd.exited).toBe(noRestartStatus());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints its options at --help and exits 0', async () => {
    const meshd = spawnMeshd(['--help']);
    await expect(meshd.ready).rejects.toThrow(/exited with 0 before ready/);
    expect(meshd.logs.some((l) => String(l.raw).includes('--registry-addr <host:port>'))).toBe(true);
  });

  it('says the registry\'s address is taken before it goes on the network, not after joining the mesh', async () => {
    const holder = createServer();
    const taken = (await listenOnLoopback(holder)).replace('http://', '');
    const dataDir = mkdtempSync(join(tmpdir(), 'meshd-taken-'));
    try {
      const meshd = spawnMeshd(['--store', 'fs', '--data-dir', dataDir, '--registry-addr', taken, ...loopbackListeners((flag) => flag !== '--registry-addr')]);
      await expect(meshd.ready).rejects.toThrow(new RegExp(`registry cannot listen on ${taken}: .*EADDRINUSE`));
      expect(await meshd.exited, 'a port held for now is worth a restart').toBe(1);
      expect(noRestartStatus()).not.toBe(1);
      expect(meshd.logs.some((l) => l.msg === 'libp2p node started'), 'libp2p never started').toBe(false);
    } finally {
      await new Promise((r) => holder.close(r));
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
