// The pussh command: read the image once, then push it to every host in parallel, each through its own
// ssh tunnel to the meshd already running there.
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { Command, Option } from 'commander';
import type { DockerGlobals } from './docker-globals.js';
import { PusshError, failureOf, EXIT_CODES, type FailureKind } from './errors.js';
import { parseReplicationPolicy } from '../../oci/replication-policy.js';
import { openSource } from './open-source.js';
import { planPush, type PushPlan } from './plan.js';
import { createOutput, summaryLine, type HostResult, type Output } from './progress.js';
import { pushImage } from './push.js';
import { parseHostPort, parseImageRef, parsePlatform, parseSshTarget, type ImageRef, type SshTarget } from './refs.js';
import { ConnectionError, RegistryClient } from './registry-client.js';
import { DEFAULT_CONTAINERD_SOCKET } from './source-containerd.js';
import type { ImageSource } from './source.js';
import { openTunnel, sshSaid, type Tunnel } from './ssh-tunnel.js';
import { concurrencyLimit } from '../../util/concurrency-limit.js';

export const DEFAULT_REMOTE_REGISTRY = '127.0.0.1:5000';

interface CliOptions {
  sshKey?: string;
  hostKeyCheck: boolean;
  sshOption: string[];
  from: string;
  containerdSocket: string;
  namespace: string;
  platform?: string;
  remoteRegistry: string;
  token?: string;
  replicate?: string;
  parallel: string;
  quiet?: boolean;
  json?: boolean;
}

export interface RunContext {
  /** Run by the Docker CLI as `docker pussh`. */
  asDockerPlugin?: boolean;
  /** Docker's global options, given before `pussh` (plugin mode). */
  dockerGlobals?: DockerGlobals;
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WriteStream;
  env?: NodeJS.ProcessEnv;
}

export function packageVersion(): string {
  // dist/src/cli/pussh/ or src/cli/pussh/: the package root is a few levels up either way.
  for (const up of ['../../../package.json', '../../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'layermesh' && pkg.version) return pkg.version;
    } catch {
      // not here
    }
  }
  return 'unknown';
}

function program(name: string): Command {
  return new Command(name)
    .description('Push a local image to hosts over SSH, straight into the meshd running there; only layers a host lacks are sent')
    .usage('[options] IMAGE [USER@]HOST[:PORT] [MORE HOSTS...]')
    .argument('<image>', 'the image, as docker or ctr name it: app:1, org/app@sha256:…, ghcr.io/org/app:1')
    .argument('<hosts...>', '[USER@]HOST[:PORT]: hosts reached with your ssh client and configuration')
    .option('-i, --ssh-key <file>', 'ssh private key (otherwise your agent and ~/.ssh/config decide)')
    .option('--no-host-key-check', 'do not verify the hosts\' ssh keys (first contact on a trusted network only)')
    .addOption(new Option('-o, --ssh-option <option>', 'an extra ssh -o option, e.g. ProxyJump=bastion (repeatable)').default([], 'none')
      .argParser((v: string, prev: string[]) => [...prev, v]))
    .option('--from <source>', 'auto | containerd | docker | oci:DIR[:TAG] | docker-archive:FILE[:REF]', 'auto')
    .addOption(new Option('--containerd-socket <path>', 'local containerd socket').env('CONTAINERD_ADDRESS').default(DEFAULT_CONTAINERD_SOCKET))
    .addOption(new Option('--namespace <ns>', 'local containerd namespace (moby for Docker\'s containerd store, k8s.io for Kubernetes)').env('CONTAINERD_NAMESPACE').default('default'))
    .option('--platform <os/arch[/variant]>', 'push only this platform of a multi-platform image')
    .option('--remote-registry <host:port>', 'where meshd\'s registry listens on the hosts', DEFAULT_REMOTE_REGISTRY)
    .addOption(new Option('--token <token>', 'the hosts\' meshd --registry-token, when they have one').env('PUSSH_TOKEN'))
    .option('--replicate <policy>', 'replication policy for this push, sent to meshd with the image (x-layermesh-replicate)')
    .option('--parallel <n>', 'blobs uploaded at once, per host', '4')
    .option('-q, --quiet', 'print nothing but errors')
    .option('--json', 'print one JSON summary on stdout (progress, if any, goes to stderr)')
    .version(packageVersion(), '-v, --version')
    .showHelpAfterError()
    .exitOverride();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** ssh's reason for a failed forward, from its stderr ("channel 2: open failed: connect failed: …"). */
function forwardReason(stderr: string): string | undefined {
  return stderr.split('\n').reverse().find((l) => /open failed/.test(l))?.trim();
}

/** Waits until meshd answers through the tunnel; tells apart a tunnel still starting and nothing on the far end. */
async function reachRegistry(client: RegistryClient, tunnel: Tunnel, host: SshTarget, remote: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      await client.ping();
      return;
    } catch (err) {
      if (!(err instanceof ConnectionError)) throw err;
      // ssh made the socket but is not listening on it yet.
      if ((err.code === 'ECONNREFUSED' || err.code === 'ENOENT') && Date.now() < deadline) {
        await sleep(50);
        continue;
      }
      await sleep(100); // ssh writes why it closed the forwarded connection
      const reason = forwardReason(tunnel.stderr());
      if (reason && /administratively prohibited/.test(reason)) {
        throw new PusshError('failed', `sshd on ${host.display} does not allow port forwarding (AllowTcpForwarding in its sshd_config): ${reason}`);
      }
      throw new PusshError('no-meshd', `no meshd answers on ${remote} on ${host.display}${reason ? ` (ssh: ${reason})` : ''}.\n` +
        `Install and start meshd there (docs/pussh.md: bash scripts/install.sh, then run meshd), ` +
        'or give --remote-registry HOST:PORT if its registry listens elsewhere (meshd --registry-addr).');
    }
  }
}

/**
 * ssh connections being set up at once: hosts behind one bastion (ProxyJump) all connect through its sshd, whose
 * MaxStartups (10:30:100 by default) drops connections at random past 10 that are not yet authenticated.
 */
const SSH_SETUPS_AT_ONCE = 8;
/** How long ssh has to exit after a forwarded connection failed, before the failure is put on meshd. */
const SSH_EXIT_MS = 1_000;
/** What ends pussh early: it closes its tunnels, and exits 128 + the signal's number (130 for Ctrl-C). */
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

interface HostJob {
  target: SshTarget;
  output: Output;
  source: ImageSource;
  plan: PushPlan;
  ref: ImageRef;
  opts: CliOptions;
  interactive: boolean;
  /** Where a tunnel waits its turn to be set up (SSH_SETUPS_AT_ONCE). */
  setUp: <T>(task: () => Promise<T>) => Promise<T>;
  /** Open tunnels, closed on Ctrl-C too. */
  tunnels: Set<Tunnel>;
}

async function pushToHost(job: HostJob): Promise<HostResult> {
  const { target, opts, plan, ref } = job;
  const started = Date.now();
  const out = job.output.host(target.display);
  const remote = parseHostPort(opts.remoteRegistry, '--remote-registry');
  let tunnel: Tunnel | undefined;
  let client: RegistryClient | undefined;
  try {
    out.note(`connecting with ssh`);
    tunnel = await job.setUp(() => openTunnel({
      target,
      remote,
      identity: opts.sshKey,
      noHostKeyCheck: !opts.hostKeyCheck,
      sshOptions: opts.sshOption,
      interactive: job.interactive,
    }));
    job.tunnels.add(tunnel);
    const parallel = Number(opts.parallel);
    client = new RegistryClient({ socketPath: tunnel.socketPath, authority: opts.remoteRegistry, token: opts.token }, parallel + 2);
    await reachRegistry(client, tunnel, target, opts.remoteRegistry);
    out.note(`meshd answers on ${opts.remoteRegistry}; pushing ${plan.blobs.length} blobs and ${plan.manifests.length} manifests`);
    let stats;
    try {
      stats = await pushImage(client, job.source, plan, { repo: ref.remoteName, tag: ref.tag, replicate: opts.replicate }, { parallel, listener: out });
    } catch (err) {
      if (!(err instanceof ConnectionError)) throw err;
      // ssh still up (a link that dies takes ssh with it within moments): meshd there closed or stalled the connection.
      if (await tunnel.outlives(SSH_EXIT_MS)) {
        throw new PusshError('no-meshd', `meshd on ${target.display} broke off the push, ssh still up (did meshd restart?): ${err.message}`);
      }
      const said = sshSaid(tunnel.stderr());
      throw new PusshError('ssh-unreachable', `connection to ${target.display} lost: ${err.message}${said ? `\n${said}` : ''}`);
    }
    return { host: target.display, ok: true, digest: plan.root.digest, stats, seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    return { host: target.display, ok: false, error: failureOf(err), seconds: (Date.now() - started) / 1000 };
  } finally {
    client?.close();
    if (tunnel) {
      job.tunnels.delete(tunnel);
      await tunnel.close();
    }
  }
}

function jsonResult(r: HostResult): Record<string, unknown> {
  const base = { host: r.host, ok: r.ok, seconds: Number(r.seconds.toFixed(3)) };
  if (!r.ok || !r.stats) return { ...base, error: r.error };
  return { ...base, digest: r.digest, ...r.stats };
}

/** Runs pussh with these arguments (without node and script); resolves with the exit status. */
export async function runPussh(argv: string[], ctx: RunContext = {}): Promise<number> {
  const stdout = ctx.stdout ?? process.stdout;
  const stderr = ctx.stderr ?? process.stderr;
  const cmd = program(ctx.asDockerPlugin ? 'docker pussh' : 'pussh')
    .configureOutput({ writeOut: (s) => stdout.write(s), writeErr: (s) => stderr.write(s) });
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode;
    return code === 0 ? 0 : EXIT_CODES.usage; // --help and --version exit 0
  }
  const opts = cmd.opts<CliOptions>();
  const [image, hosts] = cmd.processedArgs as [string, string[]];
  const fail = (kind: FailureKind, message: string) => {
    stderr.write(`pussh: ${message}\n`);
    if (opts.json) stdout.write(`${JSON.stringify({ image, ok: false, error: { kind, message }, hosts: [] })}\n`);
    return EXIT_CODES[kind];
  };

  let ref: ImageRef;
  let targets: SshTarget[];
  let source: ImageSource | undefined;
  const tunnels = new Set<Tunnel>();
  let output: Output | undefined;
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    // The pushes now fail as their tunnels close: that is no news to the user who pressed Ctrl-C.
    interrupted = true;
    output?.interrupt();
    stderr.write(`\npussh: ${signal}: closing ssh tunnels\n`);
    void Promise.allSettled([...tunnels].map((t) => t.close()).concat(source ? [source.close()] : []))
      .finally(() => process.exit(128 + osConstants.signals[signal]));
  };
  // SIGHUP: the terminal pussh ran in went away (an ssh session to a build host dropped).
  for (const signal of SIGNALS) process.once(signal, onSignal);
  try {
    ref = parseImageRef(image);
    targets = hosts.map(parseSshTarget);
    const platform = opts.platform ? parsePlatform(opts.platform) : undefined;
    parseHostPort(opts.remoteRegistry, '--remote-registry');
    const parallel = Number(opts.parallel);
    if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64) throw new PusshError('usage', `--parallel ${opts.parallel}: expected 1 to 64`);
    // Checked here, not only by meshd with the manifest, after every layer was sent.
    if (opts.replicate !== undefined) replicationPolicy(opts.replicate);

    source = await openSource({
      from: opts.from, ref, containerdSocket: opts.containerdSocket, namespace: opts.namespace,
      dockerFirst: ctx.asDockerPlugin, dockerGlobals: ctx.dockerGlobals, env: ctx.env,
    });
    const plan = await planPush(source, platform);
    const display = createOutput({ quiet: opts.quiet, stream: opts.json ? stderr : stdout });
    output = display;
    const interactive = !!process.stdin.isTTY && targets.length === 1;
    const setUp = concurrencyLimit(SSH_SETUPS_AT_ONCE);
    const results = await Promise.all(targets.map((target) =>
      pushToHost({ target, output: display, source: source!, plan, ref, opts, interactive, setUp, tunnels })));
    if (interrupted) return new Promise<number>(() => {}); // the signal handler exits
    display.finish(image, results.filter((r) => r.ok));
    for (const r of results) if (!r.ok) stderr.write(`pussh: ${summaryLine(image, r)}\n`);
    if (opts.json) {
      stdout.write(`${JSON.stringify({
        image, digest: plan.root.digest, source: source.description, platform: plan.platform ?? null,
        ok: results.every((r) => r.ok), hosts: results.map(jsonResult),
      })}\n`);
    }
    const failed = results.find((r) => !r.ok);
    return failed ? EXIT_CODES[failed.error!.kind] : 0;
  } catch (err) {
    const { kind, message } = failureOf(err);
    return fail(kind, message);
  } finally {
    for (const signal of SIGNALS) process.removeListener(signal, onSignal);
    await source?.close();
  }
}

function replicationPolicy(text: string): void {
  try {
    parseReplicationPolicy(text);
  } catch (err) {
    throw new PusshError('usage', `--replicate: ${(err as Error).message}`);
  }
}
