// Issue 12's re-push race at volume: push a config and a layer, tag a manifest, delete it by digest, push
// the same layer again and read it back (test/helpers/repush.ts), on meshd over a private containerd.
// containerd's GC runs amid the rounds; every re-push must answer 201 and serve the right bytes.
import { repushRound } from '../test/helpers/repush.js';
import { cpuSeconds } from '../test/helpers/procfs.js';
import { startMeshdOnContainerd } from './lib/servers.js';

export interface RepushRaceReport {
  rounds: number;
  lanes: number;
  /** Rounds in which any step failed. */
  failures: number;
  /** Of those, rounds whose re-push itself was refused (the 500). */
  repushFailures: number;
  seconds: number;
  /** meshd + containerd CPU seconds. */
  serverCpuSeconds: number;
  /** The first few failures, as the registry answered them. */
  examples: string[];
}

export async function benchRepushRace(opts: { rounds: number; lanes: number }, say: (line: string) => void): Promise<RepushRaceReport> {
  say(`starting containerd + meshd; ${opts.rounds} re-push rounds in ${opts.lanes} repositories side by side…`);
  const server = await startMeshdOnContainerd('meshd (containerd)');
  try {
    const examples: string[] = [];
    let failures = 0;
    let repushFailures = 0;
    let done = 0;
    const cpuBefore = await cpuSeconds(server.pids);
    const start = performance.now();
    await Promise.all(Array.from({ length: opts.lanes }, async (_, lane) => {
      for (let i = lane; i < opts.rounds; i += opts.lanes) {
        const outcome = await repushRound(server.url, `race/app${lane}`);
        if (outcome.failure) {
          failures++;
          if (outcome.repushFailed) repushFailures++;
          if (examples.length < 5) examples.push(`round ${i}: ${outcome.failure}`);
        }
        if (++done % 200 === 0) say(`  ${done} rounds, ${failures} failed`);
      }
    }));
    const seconds = (performance.now() - start) / 1000;
    const serverCpuSeconds = (await cpuSeconds(server.pids)) - cpuBefore;
    return { rounds: opts.rounds, lanes: opts.lanes, failures, repushFailures, seconds, serverCpuSeconds, examples };
  } finally {
    await server.stop();
  }
}
