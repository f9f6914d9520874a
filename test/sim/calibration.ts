// The replication simulation's parameters, measured on the fleet bench (bench/fanout.ts: 8 hosts in
// network namespaces of one 2-core machine, links shaped with htb). How each was measured is beside it;
// `node dist/test/sim/calibrate.js` runs the real fleet and the simulation side by side.
import type { Calibration } from './replication-sim.js';

/** Hosts with a machine each: the fleet the targets are about. */
export const HOSTS: Calibration = {
  // htb counts whole frames: a full TCP segment carries 1448 payload bytes in 1514 (timestamps on).
  efficiency: 1448 / 1514,
  // The push's gossip reached every taker 40–80 ms after the push ended (image-pushed event in each log).
  startMs: 70,
  // TLS request to the feeder and its answer: about a round trip through the queues of two shaped links.
  requestMs: 50,
  // A byte's lag through a node: socket buffers and the queue of two links, and the spool in between.
  hopMs: 50,
  // Last blob 'fetched from the mesh' to 'replicated' (the store's commit and the image record).
  finishMs: 300,
  recvCpuSecPerMiB: 0.045,
  sendCpuSecPerMiB: 0.025,
  // meshd is one Node.js thread; containerd's share is counted in the receiving cost.
  coresPerHost: 1,
};

/** The fleet bench: all hosts' meshd and containerd on the 2 cores of one machine. */
export const FLEET_BENCH: Calibration = { ...HOSTS, sharedCores: 2 };
