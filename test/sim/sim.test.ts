// The simulation, at a size that fits the suite's time: more nodes than the DHT's replication
// factor (20), so records are placed on each key's closest peers rather than on everyone.
// `npm run sim` gives the figures for 10, 50 and 100 nodes.
import { describe, expect, it } from 'vitest';
import { simulate } from './mesh-sim.js';

describe('in-process mesh larger than the replication factor', () => {
  it('finds the holder of every looked-up key from other nodes', async () => {
    const f = await simulate({ nodes: 30, keys: 500, lookups: 60 }, (line) => console.log(line));
    console.log(JSON.stringify(f));
    expect(f.found).toBe(f.lookups);
    // 30 nodes share this process's event loop (forming their mesh keeps it busy about 25 s): 48 s alone, about
    // 2 minutes beside busy neighbours (the suite's other worker). The phases it prints tell where a slow run was.
  }, 300_000);
});
