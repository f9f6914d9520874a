// meshd started with a configuration it cannot use: a clear line naming what to fix, exit status 1.
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { spawnMeshd } from './helpers/meshd.js';

describe('meshd with a configuration it cannot use', () => {
  it('names --log-level when MESHD_LOG_LEVEL is not a level it knows, instead of crashing with a stack', async () => {
    const meshd = spawnMeshd(['--store', 'fs', '--data-dir', '/nonexistent/never-made'], { env: { ...process.env, MESHD_LOG_LEVEL: 'verbose' } });
    await expect(meshd.ready).rejects.toThrow(/'--log-level <level>' value 'verbose' from env 'MESHD_LOG_LEVEL' is invalid\. Allowed choices are trace, debug, info, warn, error/);
    expect(await meshd.exited).toBe(1);
  });

  it('says the registry\'s address is taken before it goes on the network, not after joining the mesh', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const taken = `127.0.0.1:${(holder.address() as { port: number }).port}`;
    const dataDir = `/tmp/meshd-taken-${process.pid}`;
    try {
      const meshd = spawnMeshd(['--store', 'fs', '--data-dir', dataDir, '--registry-addr', taken,
        '--peer-addr', '127.0.0.1:0', '--p2p-listen', '/ip4/127.0.0.1/tcp/0']);
      await expect(meshd.ready).rejects.toThrow(new RegExp(`registry cannot listen on ${taken}: .*EADDRINUSE`));
      expect(await meshd.exited).toBe(1);
      expect(meshd.logs.some((l) => l.msg === 'libp2p node started'), 'libp2p never started').toBe(false);
    } finally {
      await new Promise((r) => holder.close(r));
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
