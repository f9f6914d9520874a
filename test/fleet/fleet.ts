// A fleet of N hosts on one machine: network namespaces on one bridge, each with its own containerd and meshd
// (own data dir, the fleet's swarm key, bootstrap to host 1). Fleet.up() brings it up and waits until every
// host has joined the mesh; down() removes everything it created and checks that nothing remains (cleanup.ts).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from '../helpers/wait.js';
import { ensurePackages } from '../helpers/apt.js';
import { leftovers, removeLeftoverRuns, removeRun } from './cleanup.js';
import { exec } from './exec.js';
import { FleetHost, P2P_PORT, REGISTRY_ADDR, type HostContext } from './host.js';
import { bridgeAddress, builtEntryPoints, hostAddress, MAX_HOSTS, newRunId, runNames, subnetCidr } from './layout.js';
import { createBridge, createHostNetwork, subnetsInUse } from './network.js';
import { isUnshaped, validateShape, type ShapeSpec } from './shaping.js';
import { claimSubnet, currentOwner, listRuns, writeState, type FleetState } from './state.js';

/** Where a fleet's hosts are: each host's address, and the root namespace's on the bridge. */
export interface FleetAddresses {
  addressOf(index: number): string;
  bridge: string;
}

export interface FleetOptions {
  /** meshd --record-ttl (e.g. `10s`): how soon a dead host vanishes from who-has. meshd's default otherwise. */
  recordTtl?: string;
  /** meshd --reconcile-interval. */
  reconcileInterval?: string;
  /** meshd --log-level; default info. Logs are in <host dir>/meshd.log. */
  logLevel?: string;
  /** Extra meshd arguments, for every host or per host (index from 1; `net`: the fleet's addresses). */
  meshdArgs?: string[] | ((index: number, net: FleetAddresses) => string[]);
  /** Whether hosts bootstrap to host 1; default true. Without it they must find each other (`--mdns`). */
  bootstrap?: boolean;
  /** Shaping of every host's link; default unshaped. */
  shape?: ShapeSpec;
  /**
   * What up() waits for once every meshd is ready: `joined` (default: host 1, the bootstrap, sees every host
   * and every host sees host 1), `full-mesh` (every meshd sees every other; meshd does not promise that for
   * large fleets, where peers find each other through the DHT as they need to), or `none`.
   */
  waitFor?: 'joined' | 'full-mesh' | 'none';
  /** TCP congestion control of every host (e.g. `cubic`, Debian's default); default FLEET_TCP_CC, else the machine's. */
  tcp?: string;
}

export class Fleet {
  readonly hosts: FleetHost[] = [];
  private readonly abort = new AbortController();
  private starting: Promise<void> | undefined;
  private downing: Promise<void> | undefined;
  private saving: Promise<void> = Promise.resolve();
  private readonly createdAt = new Date().toISOString();
  private detached: boolean;

  private constructor(
    readonly run: string,
    /** Third octet of the fleet's 10.231.<subnet>.0/24. */
    readonly subnet: number,
    private readonly opts: FleetOptions,
    private readonly owner: FleetState['owner'],
  ) {
    this.detached = false; // only once it is fully up: a `fleet up` killed half-way is a leftover
  }

  /** Brings up n hosts; on any failure removes what it created and rethrows. */
  static async up(n: number, opts: FleetOptions = {}): Promise<Fleet> {
    const fleet = await Fleet.create(n, opts);
    await fleet.start(n);
    return fleet;
  }

  /**
   * Allocates the run (id, subnet, marker file) without starting anything, so that a caller can hold the
   * fleet, and call down() on Ctrl-C, while start() runs.
   */
  static async create(n: number, opts: FleetOptions = {}): Promise<Fleet> {
    if (!Number.isInteger(n) || n < 1 || n > MAX_HOSTS) throw new Error(`a fleet has 1 to ${MAX_HOSTS} hosts, not ${n}`);
    if (opts.shape) validateShape(opts.shape);
    if (process.getuid?.() !== 0) throw new Error('a fleet needs root: it creates network namespaces, links and tc rules');
    builtEntryPoints(); // fail now, not in the middle, when dist/ is missing
    await ensurePackages({ ip: 'iproute2', tc: 'iproute2', containerd: 'containerd', ctr: 'containerd', skopeo: 'skopeo', curl: 'curl' });
    const removed = await removeLeftoverRuns();
    if (removed.length) console.error(`fleet: removed leftovers of crashed runs ${removed.join(', ')}`);
    const owner = await currentOwner();
    // The marker comes first (allocateRun writes it): whatever follows, cleanup can find it.
    const { run, subnet } = await allocateRun(owner);
    const fleet = new Fleet(run, subnet, opts, owner);
    await fleet.save();
    return fleet;
  }

  /** Creates the network and the hosts' daemons; on failure removes the run and rethrows. */
  async start(n: number): Promise<void> {
    if (this.starting) throw new Error(`fleet ${this.run} was started already`);
    this.starting = this.startHosts(n);
    try {
      await this.starting;
    } catch (err) {
      let message = (err as Error).message;
      await this.down().catch((e: Error) => (message += `\n(and cleaning up failed too: ${e.message})`));
      throw new Error(`fleet ${this.run} did not come up: ${message}`, { cause: err });
    }
  }

  /** Host i, counting from 1 like the host names (h1 is host(1)). */
  host(i: number): FleetHost {
    const h = this.hosts[i - 1];
    if (!h) throw new Error(`fleet ${this.run} has no host ${i} (it has ${this.hosts.length})`);
    return h;
  }

  /** The root namespace's address on the fleet's bridge. */
  get bridgeAddress(): string {
    return bridgeAddress(this.subnet);
  }

  get cidr(): string {
    return subnetCidr(this.subnet);
  }

  get swarmKeyFile(): string {
    return join(runNames(this.run).dir, 'swarm.key');
  }

  /** Waits until every host given (default: all) lists all the other hosts given as peers. */
  async waitForMesh({ hosts = this.hosts, timeoutMs = 30_000 }: { hosts?: FleetHost[]; timeoutMs?: number } = {}): Promise<void> {
    await this.waitForPeers(`every meshd of fleet ${this.run} to see the ${hosts.length - 1} others`, hosts, (h) => hosts.filter((o) => o !== h), timeoutMs);
  }

  /** Waits until host 1 (everyone's bootstrap) sees every host given (default: all), and each of them sees host 1. */
  async waitForJoined({ hosts = this.hosts, timeoutMs = 30_000 }: { hosts?: FleetHost[]; timeoutMs?: number } = {}): Promise<void> {
    const first = this.host(1);
    const all = hosts.includes(first) ? hosts : [first, ...hosts];
    await this.waitForPeers(`every meshd of fleet ${this.run} to join through ${first.name}`, all, (h) => (h === first ? all.filter((o) => o !== first) : [first]), timeoutMs);
  }

  private async waitForPeers(what: string, hosts: FleetHost[], expected: (h: FleetHost) => FleetHost[], timeoutMs: number): Promise<void> {
    await waitFor(what, async () => {
      if (this.abort.signal.aborted) return true; // stop polling; reported just below
      const missing: string[] = [];
      for (const h of hosts) {
        // curl, not meshctl: a poll over many hosts should not start a Node.js process for each.
        const { status, body } = await h.http('/_mesh/v1/peers');
        if (status !== 200) throw new Error(`${h.name}: GET /_mesh/v1/peers answered ${status}`);
        const seen = new Set((JSON.parse(body) as { id: string }[]).map((p) => p.id));
        const absent = expected(h).filter((o) => !seen.has(o.peerId)).map((o) => o.name);
        if (absent.length) missing.push(`${h.name} lacks ${absent.join(',')}`);
      }
      if (missing.length) throw new Error(missing.join('; ')); // waitFor reports the last error on timeout
      return true;
    }, { timeoutMs, intervalMs: 500 });
    this.checkNotAborted();
  }

  /** Shapes every host's link (see FleetHost.shape). */
  async shapeAll(spec: ShapeSpec): Promise<void> {
    for (const h of this.hosts) await h.shape(spec);
  }

  /** Marks the fleet to outlive this process (the CLI, after a successful up). */
  async detach(): Promise<void> {
    this.detached = true;
    await this.save();
  }

  /**
   * Stops every process, removes every namespace, link, mount and file of the fleet, and checks that
   * nothing remains (throws, listing what does). Safe to call twice, and while up() is still running.
   */
  down(): Promise<void> {
    this.downing ??= (async () => {
      this.abort.abort();
      await this.starting?.catch(() => {}); // let a running startHosts() notice and stop first
      await removeRun(this.run);
    })();
    return this.downing;
  }

  /** What of this fleet still exists (empty after down()). */
  leftovers(): Promise<string[]> {
    return leftovers(this.run);
  }

  state(): FleetState {
    return {
      run: this.run,
      subnet: this.subnet,
      createdAt: this.createdAt,
      owner: this.owner,
      detached: this.detached,
      swarmKeyFile: this.swarmKeyFile,
      hosts: this.hosts.map((h) => h.state()),
    };
  }

  /** Writes the marker; saves run one after another (hosts start in parallel and each saves). */
  private save(): Promise<void> {
    const next = this.saving.then(() => {
      if (this.downing) return; // the marker must not come back after down() removed it
      return writeState(this.state());
    });
    this.saving = next.catch(() => {});
    return next;
  }

  private checkNotAborted(): void {
    if (this.abort.signal.aborted) throw new Error('the fleet was taken down while coming up');
  }

  private async startHosts(n: number): Promise<void> {
    const names = runNames(this.run);
    const { meshd, meshctl } = builtEntryPoints();
    const ctx: HostContext = {
      run: this.run,
      meshdMain: meshd,
      meshctlMain: meshctl,
      meshdArgs: (h) => this.meshdArgs(h),
      save: () => this.save(),
      signal: this.abort.signal,
      readyTimeoutMs: 60_000 + 3_000 * n, // two cores start all the Node.js processes at once
    };
    await writeFile(this.swarmKeyFile, await exec(process.execPath, [meshctl, 'swarm-key', 'generate'], { context: 'swarm key' }), { mode: 0o600 });

    await createBridge(this.run, this.subnet);
    for (let i = 1; i <= n; i++) {
      this.checkNotAborted();
      await createHostNetwork(this.run, this.subnet, i, this.opts.tcp ?? (process.env.FLEET_TCP_CC || undefined));
      const dir = names.hostDir(i);
      await mkdir(dir, { recursive: true });
      this.hosts.push(new FleetHost({
        index: i, name: `h${i}`, ns: names.ns(i), veth: names.veth(i), address: hostAddress(this.subnet, i), dir,
        containerdSocket: join(dir, 'containerd', 'containerd.sock'),
      }, ctx));
    }
    await this.save();
    if (this.opts.shape && !isUnshaped(this.opts.shape)) await this.shapeAll(this.opts.shape);

    await Promise.all(this.hosts.map(async (h) => {
      this.checkNotAborted();
      await h.startContainerd();
    }));
    // Host 1 first: everyone else bootstraps to it.
    this.checkNotAborted();
    await this.host(1).startMeshd();
    await Promise.all(this.hosts.slice(1).map(async (h) => {
      this.checkNotAborted();
      await h.startMeshd();
    }));
    const wait = this.opts.waitFor ?? 'joined';
    if (n > 1 && wait === 'joined') await this.waitForJoined({ timeoutMs: 30_000 + 1_000 * n });
    if (n > 1 && wait === 'full-mesh') await this.waitForMesh({ timeoutMs: 30_000 + 1_000 * n });
    this.checkNotAborted();
  }

  private meshdArgs(h: FleetHost): string[] {
    const { recordTtl, reconcileInterval, logLevel, meshdArgs, bootstrap = true } = this.opts;
    const net = { addressOf: (i: number) => hostAddress(this.subnet, i), bridge: this.bridgeAddress };
    const extra = typeof meshdArgs === 'function' ? meshdArgs(h.index, net) : meshdArgs ?? [];
    const first = this.hosts[0];
    return [
      '--store', 'containerd',
      '--containerd-socket', h.containerdSocket,
      '--containerd-namespace', 'default',
      '--data-dir', h.meshdDataDir,
      '--registry-addr', REGISTRY_ADDR,
      '--p2p-listen', `/ip4/${h.address}/tcp/${P2P_PORT}`,
      '--swarm-key', this.swarmKeyFile,
      '--node-name', h.name,
      '--log-level', logLevel ?? 'info',
      ...(bootstrap && h !== first && first?.p2p ? ['--bootstrap', first.p2p] : []),
      ...(recordTtl ? ['--record-ttl', recordTtl] : []),
      ...(reconcileInterval ? ['--reconcile-interval', reconcileInterval] : []),
      ...extra,
    ];
  }
}

/**
 * A fresh run id and a 10.231.x.0/24 that neither another run nor this machine's routes use. Two processes
 * may allocate at the same moment (two test files): the subnet is claimed with an exclusive file create.
 */
async function allocateRun(owner: FleetState['owner']): Promise<{ run: string; subnet: number }> {
  let run: string;
  do run = newRunId();
  while ((await leftovers(run)).length > 0);
  const tried = new Set<number>();
  for (;;) {
    const taken = await subnetsInUse();
    for (const s of await listRuns()) taken.add(s.subnet);
    const free = Array.from({ length: 254 }, (_, i) => i + 1).filter((x) => !taken.has(x) && !tried.has(x));
    if (free.length === 0) throw new Error('no free 10.231.x.0/24 for a fleet: every one is in use');
    const subnet = free[Math.floor(Math.random() * free.length)];
    tried.add(subnet);
    // The marker first, naming the subnet: a claim whose run has no marker is stale (see claimSubnet).
    await writeState({ run, subnet, createdAt: new Date().toISOString(), owner, detached: false, swarmKeyFile: '', hosts: [] });
    if (await claimSubnet(run, subnet)) return { run, subnet };
  }
}
