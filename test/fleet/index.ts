// The fleet harness's API for tests and benchmarks: `const fleet = await Fleet.up(4)`, `fleet.host(2).…`,
// `await fleet.down()`. See docs/fleet.md.
export { Fleet, type FleetAddresses, type FleetOptions } from './fleet.js';
export { FleetHost, REGISTRY_ADDR, P2P_PORT } from './host.js';
export type { ShapeSpec } from './shaping.js';
export { CommandError, type ExecResult } from './exec.js';
export { leftovers, removeLeftoverRuns, removeRun } from './cleanup.js';
export { listRuns, type FleetState, type HostState } from './state.js';
export { STATE_ROOT, MAX_HOSTS } from './layout.js';
export { waitFor } from '../helpers/wait.js';
