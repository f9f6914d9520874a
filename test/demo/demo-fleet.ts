// The three hosts of `npm run demo`, in one of two shapes behind one small interface, so that the story in
// main.ts is told once: network namespaces with a containerd each (the fleet harness, as root), or plain
// meshd processes on loopback with the embedded store (anyone).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerEntry } from '../../src/api/admin-types.js';
import { generateSwarmKey } from '../../src/dht/swarm-key.js';
import { ensurePackages } from '../helpers/apt.js';
import { startMeshd, type Meshd } from '../helpers/meshd.js';
import type { BuiltImage } from '../helpers/oci-image.js';
import { waitFor } from '../helpers/wait.js';
import { exec, tryExec, type ExecResult } from '../fleet/exec.js';
import { Fleet } from '../fleet/fleet.js';
import { REGISTRY_ADDR, type FleetHost } from '../fleet/host.js';
import { builtEntryPoints } from '../fleet/layout.js';
import { pidsMentioning } from '../fleet/processes.js';

export interface DemoHost {
  /** `h1`, `h2`, `h3`: also meshd's --node-name. */
  readonly name: string;
  /** Where the host's store keeps verified blobs, one file per hex digest. */
  readonly blobDir: string;
  /** GET on the node's admin API (`/_mesh/v1/…`), parsed. */
  admin<T>(path: string): Promise<T>;
  /** `meshctl --node <this node> …args`; resolves whatever the exit status. */
  meshctl(args: string[]): Promise<ExecResult>;
  /** The last lines of meshd's log, for a failure report. */
  logTail(lines: number): Promise<string>;
}

export interface DemoFleet {
  readonly kind: 'namespaces' | 'loopback';
  /** Filled by start(). */
  readonly hosts: DemoHost[];
  /** Brings the three hosts up and waits until every meshd sees the two others. */
  start(): Promise<void>;
  /** What the hosts are, for the reader, once started. */
  describe(): string[];
  /** Pushes image to h1's registry as `ref` (`repo:tag`) with skopeo; returns the command as shown to the reader. */
  push(image: BuiltImage, ref: string): Promise<string>;
  /** Stops everything and removes every file; throws when something remains. Safe to call twice. */
  down(): Promise<void>;
  /** What of the demo still exists (empty after down()). */
  leftovers(): Promise<string[]>;
}

const HOSTS = 3;

async function tailOf(file: string, lines: number): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).trimEnd().split('\n').slice(-lines).join('\n');
}

// ---- as root: the fleet harness ----

class NamespaceHost implements DemoHost {
  readonly name: string;
  readonly blobDir: string;

  constructor(private readonly host: FleetHost) {
    this.name = host.name;
    this.blobDir = join(host.containerdRoot, 'io.containerd.content.v1.content', 'blobs', 'sha256');
  }

  async admin<T>(path: string): Promise<T> {
    // curl inside the namespace: the registry listens on the namespace's own loopback only.
    const { status, body } = await this.host.http(path);
    if (status !== 200) throw new Error(`${this.name}: GET ${path} answered ${status}: ${body.slice(0, 200)}`);
    return JSON.parse(body) as T;
  }

  meshctl(args: string[]): Promise<ExecResult> {
    return this.host.meshctl(args);
  }

  logTail(lines: number): Promise<string> {
    return tailOf(this.host.meshdLog, lines);
  }
}

export class NamespaceDemo implements DemoFleet {
  readonly kind = 'namespaces';
  hosts: DemoHost[] = [];
  private fleet: Fleet | undefined;
  private creating: Promise<Fleet> | undefined;
  private downing: Promise<void> | undefined;

  constructor(private readonly rateMbit: number) {}

  async start(): Promise<void> {
    this.creating = Fleet.create(HOSTS, { shape: { rateMbit: this.rateMbit }, waitFor: 'full-mesh' });
    this.fleet = await this.creating;
    if (this.downing) throw new Error('interrupted');
    await this.fleet.start(HOSTS);
    this.hosts = this.fleet.hosts.map((h) => new NamespaceHost(h));
  }

  describe(): string[] {
    const f = this.fleet!;
    return [
      `fleet ${f.run}: ${HOSTS} network namespaces on ${f.cidr}, each with its own containerd and meshd`,
      `every host's link is shaped to ${this.rateMbit} Mbit/s each way, so the copies take a few seconds`,
    ];
  }

  async push(image: BuiltImage, ref: string): Promise<string> {
    const args = ['copy', `oci:${image.dir}:${image.tag}`, `docker://${REGISTRY_ADDR}/${ref}`, '--dest-tls-verify=false'];
    await this.fleet!.host(1).skopeo(args);
    return `ip netns exec ${this.fleet!.host(1).ns} skopeo ${args.join(' ')}`;
  }

  down(): Promise<void> {
    // Also while start() runs: Fleet.down() stops a start in progress; a run still being allocated is awaited.
    this.downing ??= (async () => {
      const fleet = await this.creating?.catch(() => undefined);
      await fleet?.down();
    })();
    return this.downing;
  }

  async leftovers(): Promise<string[]> {
    return this.fleet ? this.fleet.leftovers() : [];
  }

  /** The run id, which names everything the fleet creates. */
  get run(): string | undefined {
    return this.fleet?.run;
  }
}

// ---- anyone: meshd processes on loopback ----

class LoopbackHost implements DemoHost {
  readonly blobDir: string;

  constructor(readonly name: string, private readonly meshd: Meshd, private readonly meshctlMain: string) {
    this.blobDir = join(meshd.dataDir, 'store', 'blobs', 'sha256');
  }

  async admin<T>(path: string): Promise<T> {
    const res = await fetch(new URL(path, this.meshd.url), { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`${this.name}: GET ${path} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
    return (await res.json()) as T;
  }

  meshctl(args: string[]): Promise<ExecResult> {
    return tryExec(process.execPath, [this.meshctlMain, '--node', this.meshd.url, ...args]);
  }

  async logTail(lines: number): Promise<string> {
    return this.meshd.logs.slice(-lines).map((l) => JSON.stringify(l)).join('\n');
  }

  get url(): string {
    return this.meshd.url;
  }

  /** A dialable multiaddr (with /p2p/<id>): what the other nodes bootstrap to. */
  get p2p(): string {
    return this.meshd.p2p[0];
  }
}

export class LoopbackDemo implements DemoFleet {
  readonly kind = 'loopback';
  hosts: LoopbackHost[] = [];
  /** Every meshd start, so that down() also stops one still starting. */
  private readonly starts: Promise<Meshd>[] = [];
  private dir: string | undefined;
  private downing: Promise<void> | undefined;

  async start(): Promise<void> {
    await ensurePackages({ skopeo: 'skopeo' });
    const { meshctl } = builtEntryPoints();
    // Everything lives in one temp dir: the swarm key and each node's data dir (identity, embedded store).
    this.dir = await mkdtemp(join(tmpdir(), 'layermesh-demo-'));
    const key = join(this.dir, 'swarm.key');
    await writeFile(key, generateSwarmKey(), { mode: 0o600 });
    // Port 0 everywhere (startMeshd's defaults): the kernel picks free ports, meshd reports them when ready.
    const common = ['--store', 'fs', '--swarm-key', key, '--log-level', 'info'];
    const start = async (name: string, extra: string[] = []) => {
      if (this.downing) throw new Error('interrupted');
      const dataDir = join(this.dir!, name);
      await mkdir(dataDir);
      const starting = startMeshd([...common, '--node-name', name, ...extra], { dataDir });
      this.starts.push(starting);
      return new LoopbackHost(name, await starting, meshctl);
    };
    const h1 = await start('h1');
    const rest = await Promise.all(Array.from({ length: HOSTS - 1 }, (_, i) => start(`h${i + 2}`, ['--bootstrap', h1.p2p])));
    this.hosts = [h1, ...rest];
    await waitFor('every meshd to see the two others', async () => {
      for (const h of this.hosts) {
        const seen = new Set((await h.admin<PeerEntry[]>('/_mesh/v1/peers')).map((p) => p.info?.name));
        const missing = this.hosts.filter((o) => o !== h && !seen.has(o.name)).map((o) => o.name);
        if (missing.length) throw new Error(`${h.name} lacks ${missing.join(',')}`);
      }
      return true;
    }, { timeoutMs: 30_000, intervalMs: 250 });
  }

  describe(): string[] {
    return [
      `${HOSTS} meshd processes on 127.0.0.1 (${this.hosts.map((h) => `${h.name} ${h.url}`).join(', ')}), embedded store, data in ${this.dir}`,
      'loopback is not shaped (shaping needs the namespaces mode, as root), so the copies take a second or two',
    ];
  }

  async push(image: BuiltImage, ref: string): Promise<string> {
    const dest = `docker://${this.hosts[0].url.replace(/^http:\/\//, '')}/${ref}`;
    const args = ['--insecure-policy', 'copy', `oci:${image.dir}:${image.tag}`, dest, '--dest-tls-verify=false'];
    await exec('skopeo', args, { context: 'push to h1' });
    return `skopeo ${args.join(' ')}`;
  }

  down(): Promise<void> {
    this.downing ??= (async () => {
      const started = await Promise.allSettled(this.starts);
      const daemons = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      await Promise.all(daemons.map(async (d) => {
        const stopped = d.stop('SIGTERM');
        const late = await Promise.race([stopped.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 15_000).unref())]);
        if (late) await d.stop('SIGKILL');
      }));
      if (this.dir) await rm(this.dir, { recursive: true, force: true, maxRetries: 3 });
      const left = await this.leftovers();
      if (left.length) throw new Error(`the demo could not remove everything; left:\n  ${left.join('\n  ')}`);
    })();
    return this.downing;
  }

  async leftovers(): Promise<string[]> {
    if (!this.dir) return [];
    const found = (await pidsMentioning(this.dir)).map((pid) => `process ${pid}`);
    if (existsSync(this.dir)) found.push(`directory ${this.dir}`);
    return found;
  }
}
