// meshd started with a configuration it cannot use: a clear line naming what to fix, exit status 1.
import { describe, expect, it } from 'vitest';
import { spawnMeshd } from './helpers/meshd.js';

describe('meshd with a configuration it cannot use', () => {
  it('names --log-level when MESHD_LOG_LEVEL is not a level it knows, instead of crashing with a stack', async () => {
    const meshd = spawnMeshd(['--store', 'fs', '--data-dir', '/nonexistent/never-made'], { env: { ...process.env, MESHD_LOG_LEVEL: 'verbose' } });
    await expect(meshd.ready).rejects.toThrow(/'--log-level <level>' value 'verbose' from env 'MESHD_LOG_LEVEL' is invalid\. Allowed choices are trace, debug, info, warn, error/);
    expect(await meshd.exited).toBe(1);
  });
});
