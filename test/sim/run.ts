// `npm run sim`: the simulation at several mesh sizes, as a table and one JSON line.
import { simulate, type SimFigures } from './mesh-sim.js';

const sizes = (process.env.SIM_NODES ?? '10,50,100').split(',').map(Number);
const keys = Number(process.env.SIM_KEYS ?? 2000);
const lookups = Number(process.env.SIM_LOOKUPS ?? 300);

const rows: SimFigures[] = [];
for (const nodes of sizes) {
  const f = await simulate({ nodes, keys, lookups });
  rows.push(f);
  console.log(`${String(nodes).padStart(4)} nodes  ${keys} keys announced in ${f.announceWallMs} ms (process CPU ${f.announceCpuMs} ms)  `
    + `lookups ${f.found}/${f.lookups} found, p50 ${f.lookupP50Ms} ms, p99 ${f.lookupP99Ms} ms`);
}
console.log(JSON.stringify({ sim: 'layermesh-mesh', rows }));
process.exit(0);
