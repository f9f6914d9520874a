// The replication simulation's parameters, measured on fleets of network namespaces on one 2-core machine
// (bench/fanout.ts, links shaped with htb), 64 MiB in 5 layers: HOSTS on fleets of 2 and 3 hosts, whose CPU
// stays mostly idle, with striped replication's CPU from the 8-host bench of its time; FLEET_BENCH on that
// bench as it runs today. `node dist/test/sim/calibrate.js` measures them again and sets the real runs
// beside the simulation (docs/benchmarks.md, "Replication simulation").

export interface Calibration {
  /** Payload over link rate: the shaper counts frames and headers too. */
  efficiency: number;
  /** From the end of the push until a taker asks for its streams (gossip, manifest, planning). */
  startMs: number;
  /** From a stream's request to its first byte, when the feeder has bytes to send (TLS request, answer). */
  requestMs: number;
  /** How far a child lags its feeder on a stripe: a fixed time (latency, the spool's hold), and bytes in buffers and queues. */
  hopMs: number;
  hopBytes: number;
  /** From a taker's last byte to its copy being whole in its store. */
  finishMs: number;
  /**
   * CPU-seconds per MiB a host spends taking, and sending; taking costs `recvCpuSecPerMiBMbit / mbit` more
   * (the slower the link, the fewer bytes each read and write carries).
   */
  recvCpuSecPerMiB: number;
  recvCpuSecPerMiBMbit: number;
  sendCpuSecPerMiB: number;
  /** CPU each host may use (cores). */
  coresPerHost: number;
  /** CPU a host's daemons use doing nothing (timers, gossip, the DHT): not there for bytes. */
  idleCoresPerHost: number;
  /** All hosts on one machine of this many cores (the fleet bench), or undefined: a machine each. */
  sharedCores?: number;
}

/** Hosts with a machine each: the fleet the targets are about. */
export const HOSTS: Calibration = {
  // htb counts whole frames: a full TCP segment carries 1448 payload bytes in 1514 (timestamps on). A plain
  // HTTP stream over these links got 0.956 × B, and 0.95 with a second stream the other way (its ACKs);
  // meshd's own streams got 0.951–0.955 × B with one taker and the CPU mostly idle, 0.91–0.95 with two, and
  // much less on the 8-host fleet bench (FLEET_BENCH), whose CPU runs out.
  efficiency: 1448 / 1514,
  // The push's gossip reached the takers 11–41 ms after skopeo returned (their image-pushed log lines),
  // median 18, on fleets of 2 and 3 hosts at 100 Mbit/s whose CPU was mostly idle (calibrate.js --hosts 2|3);
  // −30 to +115 ms on the 8-host bench, whose CPU is not. The manifest comes inlined in it.
  startMs: 20,
  // Measured with temporary timing on 2-host fleets (first bytes are not logged): 47–60 ms to the first
  // byte; about 40 ms to the answer's headers, of them ~15 for a new TLS connection, ~8 for the holder to
  // check what it holds, ~10 for its first read from the store.
  requestMs: 50,
  // Each host's copy of the first layer ended this long after the one before it in the chain on fleets of 3
  // hosts (and 5 at 25 Mbit/s; calibrate.js --hosts 3), medians: 40 ms at 100 Mbit/s (18 runs), 35 at 25 (16),
  // 71 at 10 (3); fitted by least squares, weighted by runs. Of a hop's lag, the spool's hold is up to 20 ms
  // (src/mirror/spool.ts); the rest is the bytes' way from the feeder's socket to the child's, which varies
  // from run to run with TCP (docs/benchmarks.md, session 31).
  hopMs: 33,
  hopBytes: 30_000,
  // Last blob fetched to 'replicated' (the last commit into containerd and the image record; the blob leases
  // are released after): 43–81 ms on 3-host fleets (median 50), one stripe. In k stripes the store's copy of
  // the last blob lags by its k − 1 later pieces, about 20 ms more for the last 4 MiB layer.
  finishMs: 70,
  // Striped replication. The node pushed to, which only sends: 0.004–0.014 CPU-s per MiB (meshd and
  // containerd, net of idle).
  sendCpuSecPerMiB: 0.008,
  // The whole fleet's CPU, net of idle, per MiB taken less the sending share: 0.080–0.092 at 25 Mbit/s,
  // 0.042–0.061 at 100 (medians 0.082 and 0.051), so 0.041 + 1.03 / mbit.
  recvCpuSecPerMiB: 0.041,
  recvCpuSecPerMiBMbit: 1.03,
  // meshd and containerd, two processes (meshd's share, about three quarters, stays under its one thread
  // at 100 Mbit/s: about 0.5 cores).
  coresPerHost: 2,
  // meshd and containerd of one host, 5 s idle before the runs: 0.024–0.041 cores.
  idleCoresPerHost: 0.03,
};

/**
 * The fleet bench: all hosts on the 2 cores of one machine. Its 8 hosts (7 takers) replicate along the
 * pipeline (one stripe); measured on it with calibrate.js, 8 hosts, two runs at 25 Mbit/s and six at 100.
 */
export const FLEET_BENCH: Calibration = {
  ...HOSTS,
  sharedCores: 2,
  // Each taker's bytes after its first blob over the time they took, at 25 Mbit/s, where the CPU binds
  // least: 0.85–0.90 × B (0.956 for a plain TCP stream on the same links).
  efficiency: 0.88,
  // The gossip reached the takers 32–155 ms after the push, median 44.
  startMs: 45,
  // Last blob fetched to 'replicated': 105–107 ms at 25 Mbit/s, 82–265 at 100 (median 136), where containerd
  // waits for CPU.
  finishMs: 120,
  // Taking: 0.055–0.056 CPU-s per MiB at 25 Mbit/s, 0.028–0.039 at 100 (median 0.035).
  recvCpuSecPerMiB: 0.028,
  recvCpuSecPerMiBMbit: 0.68,
  // The node pushed to: 0.008–0.013.
  sendCpuSecPerMiB: 0.011,
  // meshd and containerd of one host, 5 s idle before the runs: 0.009–0.013 cores.
  idleCoresPerHost: 0.01,
};
