// Link shaping with tc on both ends of a host's veth pair: the host's `eth0` (what it sends) and the
// root-namespace end (what it receives). Each direction gets:
//   htb root 1:, default class 1:10 limited to the rate           (bandwidth)
//   optional netem under 1:10                                      (one-way delay; needs sch_netem)
//   optional class 1:20 whose queue holds nothing (pfifo limit 0), fed by a classic-BPF filter that picks
//   each packet with probability lossPct/100 from the kernel's PRNG                 (random loss)
// Loss deliberately avoids netem: many small kernels (this machine's included) ship htb, tbf and cls_bpf but
// no netem, and a benchmark modelling a lossy edge link should still run there. Delay has no such substitute.
import { CommandError, exec, tryExec } from './exec.js';

export interface ShapeSpec {
  /** Bandwidth in each direction, Mbit/s. Default: unlimited. */
  rateMbit?: number;
  /** Added one-way latency in each direction, ms (a round trip through this link gains 2×). Needs netem. */
  delayMs?: number;
  /** Packets dropped in each direction, percent. */
  lossPct?: number;
}

/** What htb gets when only delay or loss is asked for: far above anything veth carries here. */
const UNLIMITED_MBIT = 10_000;
const DROP_CLASSID = 0x10020; // 1:20
/** Classic BPF `ld rand` (SKF_AD_OFF + SKF_AD_RANDOM): a fresh 32-bit random number per packet. */
const LD_RAND = 0xfffff000 + 56;

export function validateShape(spec: ShapeSpec): void {
  const { rateMbit, delayMs, lossPct } = spec;
  if (rateMbit !== undefined && !(Number.isFinite(rateMbit) && rateMbit > 0)) throw new Error(`rateMbit must be > 0, not ${rateMbit}`);
  if (delayMs !== undefined && !(Number.isFinite(delayMs) && delayMs >= 0)) throw new Error(`delayMs must be >= 0, not ${delayMs}`);
  if (lossPct !== undefined && !(Number.isFinite(lossPct) && lossPct >= 0 && lossPct < 100)) throw new Error(`lossPct must be in [0, 100), not ${lossPct}`);
}

export function isUnshaped(spec: ShapeSpec): boolean {
  return spec.rateMbit === undefined && !spec.delayMs && !spec.lossPct;
}

/** The tc commands (arguments after `tc`) that shape the egress of dev. Pure, so it can be read and tested. */
export function shapingCommands(dev: string, spec: ShapeSpec): string[][] {
  validateShape(spec);
  const mbit = spec.rateMbit ?? UNLIMITED_MBIT;
  const rate = `${Math.round(mbit * 1000)}kbit`;
  // htb refills tokens on a timer: the bucket must hold a few ms of traffic or fast links undershoot.
  const burst = `${Math.max(16_000, Math.round((mbit * 1e6) / 8 / 250))}b`;
  const cls = ['htb', 'rate', rate, 'ceil', rate, 'burst', burst, 'cburst', burst, 'quantum', '60000'];
  const cmds = [
    ['qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '10'],
    ['class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:10', ...cls],
  ];
  if (spec.delayMs) {
    cmds.push(['qdisc', 'add', 'dev', dev, 'parent', '1:10', 'handle', '10:', 'netem', 'delay', `${spec.delayMs}ms`, 'limit', '100000']);
  }
  if (spec.lossPct) {
    const threshold = Math.min(2 ** 32 - 1, Math.round((spec.lossPct / 100) * 2 ** 32));
    // A = random; if A >= threshold: return 0 (no match: default class 1:10) else: return classid 1:20.
    const program = [[0x20, 0, 0, LD_RAND], [0x35, 0, 1, threshold], [0x06, 0, 0, 0], [0x06, 0, 0, DROP_CLASSID]];
    cmds.push(
      ['class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:20', ...cls],
      ['qdisc', 'add', 'dev', dev, 'parent', '1:20', 'handle', '20:', 'pfifo', 'limit', '0'],
      ['filter', 'add', 'dev', dev, 'parent', '1:', 'prio', '1', 'protocol', 'all', 'bpf', 'bytecode',
        `${program.length},${program.map((insn) => insn.join(' ')).join(',')}`],
    );
  }
  return cmds;
}

const nsArgs = (ns: string | undefined) => (ns ? ['-n', ns] : []);

/** Removes any shaping from dev (in namespace ns when given). */
export async function clearShaping(dev: string, ns?: string): Promise<void> {
  const res = await tryExec('tc', [...nsArgs(ns), 'qdisc', 'del', 'dev', dev, 'root']);
  // Without a root qdisc tc complains; that is the state we want.
  if (res.code !== 0 && !/No such file|handle of zero|Cannot find/i.test(res.stderr)) {
    throw new Error(`cannot remove shaping from ${dev}${ns ? ` in ${ns}` : ''}: ${res.stderr.trim()}`);
  }
}

/** Replaces dev's shaping with spec; on failure dev is left unshaped and the error says why. */
export async function applyShaping(dev: string, spec: ShapeSpec, ns?: string): Promise<void> {
  await clearShaping(dev, ns);
  if (isUnshaped(spec)) return;
  const where = `${dev}${ns ? ` in ${ns}` : ''}`;
  try {
    for (const args of shapingCommands(dev, spec)) {
      await exec('tc', [...nsArgs(ns), ...args], { context: `shaping ${where}` });
    }
  } catch (err) {
    await clearShaping(dev, ns).catch(() => {});
    if (err instanceof CommandError && err.result.stderr.includes('qdisc kind is unknown') && spec.delayMs) {
      throw new Error(`delayMs needs the netem qdisc, which this kernel lacks (CONFIG_NET_SCH_NETEM); rateMbit and lossPct work without it`, { cause: err });
    }
    throw err;
  }
}

/** Packets the loss filter dropped on dev so far (0 when dev has no loss shaping). */
export async function droppedByLoss(dev: string, ns?: string): Promise<number> {
  const out = await tryExec('tc', [...nsArgs(ns), '-s', 'class', 'show', 'dev', dev, 'classid', '1:20']);
  const m = /dropped (\d+)/.exec(out.stdout);
  return m ? Number(m[1]) : 0;
}
