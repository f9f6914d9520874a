// One fleet host: a network namespace with its own containerd and meshd. Commands run inside the namespace,
// so `127.0.0.1:5000` is this host's meshd. Fault tools act on this host only.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PeerEntry, WhoHasAnswer, WhoHasEntry } from '../../src/api/admin-types.js';
import { isConnected } from '../../src/dht/router.js';
import { importLayout } from '../helpers/containerd.js';
import type { BuiltImage } from '../helpers/oci-image.js';
import { startContainerdIn, startMeshdIn } from './daemons.js';
import { exec, tryExec, type ExecOptions, type ExecResult } from './exec.js';
import { disconnectHost, reconnectHost } from './network.js';
import { isAlive, rssKb } from '../helpers/procfs.js';
import { sendSignal, spawnInNetns, stopPid } from './processes.js';
import { applyShaping, clearShaping, type ShapeSpec } from './shaping.js';
import type { HostState } from './state.js';

/** What a host needs from its fleet. */
export interface HostContext {
  run: string;
  meshdMain: string;
  meshctlMain: string;
  /** meshd's full argument list for this host (bootstrap, swarm key, options of the fleet). */
  meshdArgs(host: FleetHost): string[];
  /** Persists the fleet's state (pids, peer ids) to its marker file. */
  save(): Promise<void>;
  /** Aborted when the fleet goes down. */
  signal: AbortSignal;
  readyTimeoutMs: number;
}

/** Where the host's meshd registry (and admin API) listens, inside its namespace. */
export const REGISTRY_ADDR = '127.0.0.1:5000';
export const P2P_PORT = 4001;

export class FleetHost {
  readonly index: number;
  /** `h1`, `h2`, …: also meshd's --node-name. */
  readonly name: string;
  readonly ns: string;
  /** Root-namespace end of the host's veth pair; `eth0` inside. */
  readonly veth: string;
  readonly address: string;
  /** The host's files: containerd root/state/socket, meshd data dir, logs. */
  readonly dir: string;
  readonly containerdSocket: string;
  readonly containerdRoot: string;
  readonly meshdDataDir: string;
  readonly meshdLog: string;
  readonly registry = `http://${REGISTRY_ADDR}`;
  containerdPid = 0;
  meshdPid = 0;
  peerId = '';
  /** `/ip4/<address>/tcp/4001/p2p/<peerId>`: what other hosts bootstrap to. */
  p2p = '';
  private paused = false;

  constructor(state: HostState, private readonly ctx: HostContext) {
    this.index = state.index;
    this.name = state.name;
    this.ns = state.ns;
    this.veth = state.veth;
    this.address = state.address;
    this.dir = state.dir;
    this.containerdSocket = state.containerdSocket;
    this.containerdRoot = join(state.dir, 'containerd', 'root');
    this.meshdDataDir = join(state.dir, 'meshd');
    this.meshdLog = join(state.dir, 'meshd.log');
  }

  state(): HostState {
    return {
      index: this.index, name: this.name, ns: this.ns, veth: this.veth, address: this.address, dir: this.dir,
      containerdSocket: this.containerdSocket, containerdPid: this.containerdPid || undefined,
      meshdPid: this.meshdPid || undefined, peerId: this.peerId || undefined, p2p: this.p2p || undefined,
    };
  }

  // ---- running things inside the host ----

  /** Runs a command inside the host's namespace; resolves with stdout, rejects unless it exits 0. */
  exec(cmd: string, args: string[], opts: ExecOptions = {}): Promise<string> {
    return exec('ip', ['netns', 'exec', this.ns, cmd, ...args], { context: `host ${this.name}`, ...opts });
  }

  /** Like exec, but resolves with the exit status and both outputs whatever the status. */
  tryExec(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return tryExec('ip', ['netns', 'exec', this.ns, cmd, ...args], { context: `host ${this.name}`, ...opts });
  }

  /**
   * Starts a background process inside the host (a test server, a load generator). down() ends it with
   * everything else in the namespace.
   */
  spawn(cmd: string, args: string[]): { pid: number; log: string; stop: () => Promise<void> } {
    const log = join(this.dir, `spawn-${randomBytes(3).toString('hex')}.log`);
    const pid = spawnInNetns(this.ns, cmd, args, log);
    return { pid, log, stop: () => stopPid(pid, `${cmd} on ${this.name}`) };
  }

  /** `ctr` against the host's containerd (namespace `default` unless args say `-n`). */
  ctr(args: string[], opts: ExecOptions = {}): Promise<string> {
    return this.exec('ctr', ['--address', this.containerdSocket, ...args], opts);
  }

  /** `skopeo --insecure-policy …` inside the host: `docker://127.0.0.1:5000/…` is this host's meshd. */
  skopeo(args: string[], opts: ExecOptions = {}): Promise<string> {
    return this.exec('skopeo', ['--insecure-policy', ...args], opts);
  }

  /** `meshctl --node http://127.0.0.1:5000 …args` inside the host; never rejects on an exit status. */
  meshctl(args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.tryExec(process.execPath, [this.ctx.meshctlMain, '--node', this.registry, ...args], opts);
  }

  /** `meshctl --json …args`, parsed. Exit status 1 with JSON output (who-has: nobody) is an answer, not an error. */
  async meshctlJson<T>(args: string[]): Promise<T> {
    const res = await this.meshctl(['--json', ...args]);
    try {
      return JSON.parse(res.stdout) as T;
    } catch {
      throw new Error(`host ${this.name}: meshctl --json ${args.join(' ')} exited with ${res.code} without JSON: ${(res.stderr || res.stdout).trim()}`);
    }
  }

  /** meshd's log so far, one object per JSON line. */
  logLines(): Record<string, unknown>[] {
    return readFileSync(this.meshdLog, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  }

  /** Connected peers, as `meshctl --json peers` reports them (it lists members only heard of too, `connected: false`). */
  async peers(): Promise<PeerEntry[]> {
    return (await this.meshctlJson<PeerEntry[]>(['peers'])).filter(isConnected);
  }

  /** Providers of a digest or image tag, nearest first, as `meshctl --json who-has` reports them. */
  async whoHas(key: string): Promise<WhoHasEntry[]> {
    return (await this.meshctlJson<WhoHasAnswer>(['who-has', key])).providers;
  }

  /** GET on the host's registry or admin API (`/v2/`, `/_mesh/v1/status`) with curl inside the host. */
  async http(path: string, { timeoutMs = 10_000 } = {}): Promise<{ status: number; body: string }> {
    const out = await this.exec('curl', ['-sS', '--max-time', String(timeoutMs / 1000), '-w', '\n%{http_code}', `${this.registry}${path}`], { timeoutMs: timeoutMs + 5_000 });
    const cut = out.lastIndexOf('\n');
    return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
  }

  /**
   * Imports an image built by test/helpers/oci-image.ts straight into the host's containerd (not through
   * meshd, so a test's setup does not depend on the code under test). Returns the image name containerd
   * holds: `<repo>:<tag>`, e.g. `docker.io/library/app:1`.
   */
  async loadImage(image: BuiltImage, { repo = 'docker.io/library/app', unpack = false }: { repo?: string; unpack?: boolean } = {}): Promise<string> {
    return importLayout(image, { repo, unpack, scratchDir: this.dir, ctr: (args) => this.ctr(args) });
  }

  // ---- link shaping ----

  /** Shapes both directions of the host's link (see shaping.ts); replaces any earlier shaping. */
  async shape(spec: ShapeSpec): Promise<void> {
    await applyShaping(this.veth, spec); // what the host receives
    try {
      await applyShaping('eth0', spec, this.ns); // what the host sends
    } catch (err) {
      await clearShaping(this.veth).catch(() => {});
      throw err;
    }
  }

  async unshape(): Promise<void> {
    await clearShaping(this.veth);
    await clearShaping('eth0', this.ns);
  }

  // ---- fault tools ----

  /** Sends signal (default SIGKILL) to meshd and waits until it is gone. */
  async killMeshd(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const pid = this.meshdPid;
    if (!pid) return;
    await stopPid(pid, `meshd on ${this.name}`, { sig: signal, graceMs: 10_000 });
    this.meshdPid = 0;
    this.paused = false;
    await this.ctx.save();
  }

  /** SIGSTOP: the process stays, its sockets stay open, it answers nothing (a hung daemon). */
  pauseMeshd(): void {
    this.requireMeshd('pause');
    sendSignal(this.meshdPid, 'SIGSTOP');
    this.paused = true;
  }

  resumeMeshd(): void {
    this.requireMeshd('resume');
    sendSignal(this.meshdPid, 'SIGCONT');
    this.paused = false;
  }

  get meshdPaused(): boolean {
    return this.paused;
  }

  /** Starts meshd when it does not run; same data dir, so the same peer id. */
  async startMeshd(): Promise<void> {
    if (this.meshdPid && (await isAlive(this.meshdPid))) throw new Error(`host ${this.name}: meshd already runs (pid ${this.meshdPid})`);
    const ready = await startMeshdIn(this.ns, this.ctx.meshdMain, this.ctx.meshdArgs(this), this.meshdLog, {
      timeoutMs: this.ctx.readyTimeoutMs,
      signal: this.ctx.signal,
    });
    const own = ready.p2p.find((a) => a.startsWith(`/ip4/${this.address}/tcp/`));
    if (!own) throw new Error(`host ${this.name}: meshd listens on ${ready.p2p.join(', ')}, not on ${this.address}`);
    this.meshdPid = ready.pid;
    this.peerId = ready.peerId;
    this.p2p = own;
    this.paused = false;
    await this.ctx.save();
  }

  /** SIGTERM (a clean stop), then start again with the same data dir: the peer id does not change. */
  async restartMeshd(): Promise<void> {
    await this.killMeshd('SIGTERM');
    await this.startMeshd();
  }

  /** Cuts the host off the bridge (a pulled cable); its processes keep running. */
  disconnect(): Promise<void> {
    return disconnectHost(this.ctx.run, this.index);
  }

  reconnect(): Promise<void> {
    return reconnectHost(this.ctx.run, this.index);
  }

  /** Starts the host's containerd (when it does not run). */
  async startContainerd(): Promise<void> {
    const started = await startContainerdIn(this.ns, join(this.dir, 'containerd'));
    this.containerdPid = started.pid;
    await this.ctx.save();
  }

  /** SIGTERM to containerd; meshd keeps running. */
  async stopContainerd(): Promise<void> {
    if (this.containerdPid) await stopPid(this.containerdPid, `containerd on ${this.name}`);
    this.containerdPid = 0;
    await this.ctx.save();
  }

  /** stopContainerd, then start it again on the same root, state and socket. */
  async restartContainerd(): Promise<void> {
    await this.stopContainerd();
    await this.startContainerd();
  }

  /** Resident memory of the host's daemons, KiB. */
  async memory(): Promise<{ containerdKb: number; meshdKb: number }> {
    return { containerdKb: await rssKb(this.containerdPid), meshdKb: await rssKb(this.meshdPid) };
  }

  private requireMeshd(what: string): void {
    if (!this.meshdPid) throw new Error(`host ${this.name}: cannot ${what} meshd, it does not run`);
  }
}
