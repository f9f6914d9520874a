// The replication simulation's parameters, measured on the fleet bench (bench/fanout.ts: 8 hosts in
// network namespaces of one 2-core machine, links shaped with htb, the replicator's pipeline of one stream
// per taker). `node dist/test/sim/calibrate.js` measures them again and sets the real runs beside the
// simulation. Figures from its runs at 25 and 100 Mbit/s, 64 MiB in 5 layers (docs/benchmarks.md).
import type { Calibration } from './replication-sim.js';

/** Hosts with a machine each: the fleet the targets are about. */
export const HOSTS: Calibration = {
  // htb counts whole frames: a full TCP segment carries 1448 payload bytes in 1514 (timestamps on).
  efficiency: 1448 / 1514,
  // The push's gossip reached the takers −30 to +115 ms after skopeo returned (their image-pushed log
  // lines), median about 30; the manifest comes inlined in it.
  startMs: 30,
  // Not measured apart (first bytes of a sequence are not logged): a request on a kept-alive TLS connection
  // and its answer, through two links' queues.
  requestMs: 50,
  // Each host's copy of the first layer ended 38–123 ms after the one before it in the chain at 25 Mbit/s
  // (median 68): the spool holds bytes up to 20 ms (MAX_HOLD_MS in src/mirror/spool.ts) and the rest is
  // bytes in socket buffers and the queues of two links, about 140 KiB at 25 Mbit/s.
  hopMs: 20,
  hopBytes: 140 << 10,
  // Last blob fetched to 'replicated' (the last commit into containerd and the image record): 200–1300 ms,
  // the shortest on the least loaded runs; a host of its own is taken to be as quick as those.
  finishMs: 200,
  // The node pushed to, which only sends: 0.004–0.007 CPU-s per MiB (meshd and containerd, net of idle).
  sendCpuSecPerMiB: 0.006,
  // The whole fleet's CPU, net of idle, per MiB taken less the sending share: 0.044–0.049.
  recvCpuSecPerMiB: 0.046,
  // meshd is one Node.js thread; containerd's part per byte is smaller and counted with it.
  coresPerHost: 1,
  // meshd and containerd of one host, 5 s idle before the runs: 0.040 cores.
  idleCoresPerHost: 0.04,
};

/** The fleet bench: all hosts on the 2 cores of one machine, and its commits as slow as they were there. */
export const FLEET_BENCH: Calibration = { ...HOSTS, sharedCores: 2, finishMs: 500 };
