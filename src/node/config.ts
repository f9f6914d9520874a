// meshd's configuration: command-line flags, then MESHD_* environment variables,
// then the YAML file given by --config, then defaults.
import { readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { parseReplicationPolicy, type ReplicationPolicy } from '../oci/replication-policy.js';
import { parseCount, parseDuration, parseSize } from './size.js';
import { parseLimit } from './limits.js';
import type { BandwidthLimits } from '../mirror/bandwidth.js';
import type { Watermark } from './eviction.js';
import { checkAddresses, diskWatermarks, parseEndpoints, parseLabels, parseMinCopies } from './config-values.js';

export type StoreKind = 'auto' | 'containerd' | 'fs';

export interface Config {
  dataDir: string;
  store: StoreKind;
  containerdSocket: string;
  containerdNamespace: string;
  registryAddr: string;
  registryToken?: string;
  registryTokenFile?: string;
  /** Networks whose clients may read without the token. */
  registryAllow: string[];
  /** Local users of this group may write, as root may. */
  writeGroup: string;
  maxUploadSize: number;
  uploadTimeoutMs: number;
  maxUploads: number;
  maxConnections: number;
  gcDelayMs: number;
  maxUploadsPerClient: number;
  shutdownGraceMs: number;
  logLevel: string;
  nodeName: string;
  labels: Record<string, string>;
  p2pListen: string[];
  bootstrap: string[];
  mdns: boolean;
  swarmKeyFile?: string;
  recordTtlMs: number;
  reconcileIntervalMs: number;
  peerAddr: string;
  /** The peer data plane in plain HTTP instead of TLS (every member must agree). */
  peerPlaintext: boolean;
  /** Bytes per second; absent: no limit. */
  limits: BandwidthLimits;
  mirrorTags: boolean;
  mirrorRegistries: string[];
  mirrorTimeoutMs: number;
  /** Pull what the mesh lacks through from the image's own registry. */
  upstream: boolean;
  /** Where a registry is really reached, by registry host: `docker.io` → `http://10.0.0.5:5000`. */
  upstreamEndpoints: Record<string, string>;
  /** Credentials for upstream registries, in Docker's config.json format. */
  upstreamAuthFile?: string;
  upstreamTimeoutMs: number;
  replicate: ReplicationPolicy;
  /** Above high, what the mesh brought is evicted down to low. */
  diskWatermarks?: { high: Watermark; low: Watermark };
  /** Content fewer other nodes hold is evicted only when nothing else can go. */
  minCopies: number;
  /** Images this host's users pushed or pulled may be evicted too. */
  evictLocal: boolean;
  diskCheckIntervalMs: number;
}

/** A configuration meshd cannot use: starting again will not mend it, so meshd exits with its own status (main.ts). */
export class ConfigError extends Error {}

/** `err` as a ConfigError; its message says it all (a cause would only repeat it in the log). */
export function asConfigError(err: unknown): ConfigError {
  return err instanceof ConfigError ? err : new ConfigError((err as Error).message);
}

/**
 * The mesh's listeners: on every interface with a swarm key; without one, both on loopback unless both are named
 * (flag, environment or file), so that an open mesh is never had by accident.
 */
const MESH_LISTEN = { p2p: '/ip4/0.0.0.0/tcp/4001', peer: '0.0.0.0:5001' };
const MESH_LISTEN_ALONE = { p2p: '/ip4/127.0.0.1/tcp/4001', peer: '127.0.0.1:5001' };

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

function option(flags: string, description: string, defaultValue?: string): Option {
  const long = flags.split(' ')[0].replace(/^--/, '');
  const opt = new Option(flags, description).env(`MESHD_${long.toUpperCase().replaceAll('-', '_')}`);
  return defaultValue === undefined ? opt : opt.default(defaultValue);
}

/** A repeatable option; the environment variable and a single flag value may also list values with commas. */
function listOption(flags: string, description: string, defaults: string[] = []): Option {
  const split = (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean);
  return option(flags, `${description} (repeatable)`)
    .default(defaults)
    .argParser((value: string, previous: string[]) => (previous === defaults ? split(value) : [...previous, ...split(value)]));
}

export function configCommand(): Command {
  return new Command('meshd')
    .description('LayerMesh daemon: an OCI registry backed by this host\'s containerd (or an embedded store)')
    .addOption(option('--config <file>', 'YAML configuration file (keys as the long flags, e.g. data-dir)'))
    .addOption(option('--data-dir <dir>', 'state directory (embedded store, identity)', '/var/lib/layermesh'))
    .addOption(option('--store <kind>', 'auto | containerd | fs (auto: containerd when its socket answers)', 'auto').choices(['auto', 'containerd', 'fs']))
    .addOption(option('--containerd-socket <path>', 'containerd gRPC socket', '/run/containerd/containerd.sock'))
    .addOption(option('--containerd-namespace <ns>', 'containerd namespace to serve (docker uses moby, kubernetes k8s.io)', 'default'))
    .addOption(option('--registry-addr <host:port>', 'registry listener for local clients', '127.0.0.1:5000'))
    .addOption(option('--registry-token <token>', 'token that lets any client read and write (prefer --registry-token-file: a command line is visible to every user)'))
    .addOption(option('--registry-token-file <file>', 'file holding the registry token (must not be readable by every user)'))
    .addOption(listOption('--registry-allow <cidr>', 'networks whose clients read without the token, e.g. 10.0.0.0/8 (loopback always reads)'))
    .addOption(option('--write-group <group>', 'local users of this group may push, tag and delete without the token, as root may', 'layermesh'))
    .addOption(option('--max-upload-size <size>', 'largest blob accepted', '64GiB'))
    .addOption(option('--upload-timeout <duration>', 'abandoned uploads are removed after this idle time', '30m'))
    .addOption(option('--gc-delay <duration>', 'embedded store: blobs only a deleted image referenced are removed this long after the delete', '10s'))
    .addOption(option('--max-connections <n>', 'open connections each listener (registry, peer data plane) accepts; past it new ones are refused', '4096'))
    .addOption(option('--max-uploads <n>', 'upload sessions open at once; past it a client gets 429', '1000'))
    .addOption(option('--max-uploads-per-client <n>', 'upload sessions one client address may hold open at once', '100'))
    .addOption(option('--shutdown-grace <duration>', 'at SIGTERM, in-flight requests get this long before their connections are cut', '10s'))
    .addOption(option('--log-level <level>', 'how much meshd logs', 'info').choices(LOG_LEVELS))
    .addOption(option('--node-name <name>', 'this node\'s name in the mesh', hostname()))
    .addOption(listOption('--label <key=value>', 'a label of this node, for replication selectors'))
    .addOption(listOption('--p2p-listen <multiaddr>', `libp2p listen address (without --swarm-key: ${MESH_LISTEN_ALONE.p2p})`, [MESH_LISTEN.p2p]))
    .addOption(listOption('--bootstrap <multiaddr>', 'a peer to join through, e.g. /ip4/10.0.0.1/tcp/4001/p2p/12D3Koo...'))
    .addOption(option('--mdns', 'discover peers on the LAN with mDNS'))
    .addOption(option('--swarm-key <file>', 'the fleet\'s shared key (meshctl swarm-key generate); without it the mesh stays on loopback, or is open to anyone where both its listeners are named'))
    .addOption(option('--record-ttl <duration>', 'lifetime of announcements; a node that dies disappears from who-has within it', '30m'))
    .addOption(option('--peer-addr <host:port>', `peer data plane: serves what this host holds to members of the mesh (without --swarm-key: ${MESH_LISTEN_ALONE.peer})`, MESH_LISTEN.peer))
    .addOption(option('--peer-plaintext', 'serve and ask the peer data plane in plain HTTP, unencrypted (only where the network is trusted; every member must use it)'))
    .addOption(listOption('--mirror-registry <host>', 'only images of these registries are looked for in the mesh (default: all)'))
    .addOption(option('--no-mirror-tags', 'do not resolve tags through the mesh (only digests)'))
    .addOption(option('--mirror-timeout <duration>', 'how long finding a holder may take before answering 404', '2s'))
    .addOption(option('--upstream', 'pull what no peer holds through from the image\'s own registry (only registries mirrored per --mirror-registry)'))
    .addOption(listOption('--upstream-endpoint <registry=url>', 'where a registry is really reached, e.g. docker.io=http://10.0.0.5:5000 (default https://<registry>; docker.io: https://registry-1.docker.io)'))
    .addOption(option('--upstream-auth <file>', 'credentials for upstream registries, in Docker\'s config.json format'))
    .addOption(option('--upstream-timeout <duration>', 'how long an upstream answer may take to begin, or its body may pause', '30s'))
    .addOption(option('--replicate <policy>', 'which images pushed to other nodes this node copies: all | none | name=GLOB,label.KEY=GLOB,image=GLOB', 'all'))
    .addOption(option('--upload-limit <rate>', 'bytes per second the peer data plane sends, e.g. 50MB (all transfers together)'))
    .addOption(option('--download-limit <rate>', 'bytes per second fetched from peers and upstream registries, e.g. 50MB'))
    .addOption(option('--replication-limit <rate>', 'bytes per second for background replication alone (within --download-limit), so that pulls get the rest'))
    .addOption(option('--disk-high <size|percent>', 'above this (bytes the store holds, or % of its filesystem in use) evict what the mesh brought, least recently used first'))
    .addOption(option('--disk-low <size|percent>', 'eviction stops below this'))
    .addOption(option('--min-copies <n>', 'evict content fewer other nodes hold only when nothing else can go', '2'))
    .addOption(option('--evict-local', 'images this host\'s users pushed or pulled may be evicted too'))
    .addOption(option('--disk-check-interval <duration>', 'how often the disk is measured against --disk-high', '1m'))
    .addOption(option('--reconcile-interval <duration>', 'how often the announced keys are checked against the store', '1m'))
    // Its errors are the configuration's: meshd logs them as one line (no usage after it) and exits as main.ts says.
    .configureOutput({ outputError: () => {} })
    .exitOverride((err) => {
      if (err.exitCode !== 0) throw new ConfigError(`${err.message.replace(/^error: /, '')} (meshd --help lists the options)`);
    });
}

const isSwitch = (o: Option) => !o.required && !o.optional;
const SWITCH_WORDS = new Map([['true', true], ['1', true], ['yes', true], ['on', true], ['false', false], ['0', false], ['no', false], ['off', false]]);

/** A switch (--mdns, --no-mirror-tags) given as a word: `false` must not turn it on by being there. */
function switchValue(option: Option, value: unknown, where: string): boolean {
  const word = String(value).toLowerCase();
  if (!SWITCH_WORDS.has(word)) throw new Error(`${where}: expected true or false, not "${String(value)}"`);
  const on = SWITCH_WORDS.get(word)!;
  return option.negate ? !on : on;
}

/** Commander takes a switch's environment variable as set whatever its value: read what it says. */
function applySwitchesFromEnv(cmd: Command): void {
  for (const o of cmd.options) {
    if (isSwitch(o) && o.envVar && cmd.getOptionValueSource(o.attributeName()) === 'env') {
      cmd.setOptionValueWithSource(o.attributeName(), switchValue(o, process.env[o.envVar], o.envVar), 'env');
    }
  }
}

/** A value from the YAML file as the flag would give it: switches as booleans, lists as lists (one value or many). */
function fileValue(o: Option, value: unknown, where: string): unknown {
  if (isSwitch(o)) return switchValue(o, value, where);
  if (Array.isArray(o.defaultValue)) return (Array.isArray(value) ? value : String(value).split(',')).map((v) => String(v).trim()).filter(Boolean);
  return String(value);
}

/** Fills options still at their defaults from the YAML file. */
function applyFile(cmd: Command, file: string): void {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`reading config file ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (doc === null || doc === undefined) return;
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`config file ${file}: expected a mapping of option: value`);
  const known = new Map(cmd.options.map((o) => [o.long!.slice(2), o]));
  for (const [key, value] of Object.entries(doc)) {
    const option = known.get(key);
    if (!option || key === 'config') throw new Error(`config file ${file}: unknown option "${key}"`);
    if (key === 'registry-token' && statSync(file).mode & 0o004) {
      throw new Error(`config file ${file} holds registry-token and every user of this host can read it: use registry-token-file, or chmod 600 ${file}`);
    }
    const source = cmd.getOptionValueSource(option.attributeName());
    if (source !== undefined && source !== 'default') continue;
    cmd.setOptionValueWithSource(option.attributeName(), fileValue(option, value, `config file ${file}: ${key}`), 'config');
  }
}

export function parseConfig(argv: string[]): Config {
  try {
    return readConfig(argv);
  } catch (err) {
    throw asConfigError(err);
  }
}

function readConfig(argv: string[]): Config {
  const cmd = configCommand();
  cmd.parse(argv, { from: 'user' });
  applySwitchesFromEnv(cmd);
  const file = cmd.opts().config as string | undefined;
  if (file) applyFile(cmd, file);
  const o = cmd.opts();
  const named = ['p2pListen', 'peerAddr'].filter((listener) => cmd.getOptionValueSource(listener) !== 'default');
  const alone = !o.swarmKey && named.length === 0;
  if (!o.swarmKey && named.length === 1) {
    // The other left to a default would be either open to anyone or on loopback while its peer is not: both wrong.
    throw new Error('without --swarm-key, name both --p2p-listen and --peer-addr, or neither (the mesh then stays on loopback)');
  }
  if (alone && (o.bootstrap.length > 0 || o.mdns === true)) {
    throw new Error('--bootstrap and --mdns join a mesh, which without --swarm-key stays on loopback: give every node the same '
      + '--swarm-key (meshctl swarm-key generate), or name --p2p-listen and --peer-addr to run a mesh open to anyone');
  }
  // Commander checks the choices of flags; a file's values are checked here.
  if (!['auto', 'containerd', 'fs'].includes(o.store)) throw new Error(`--store must be auto, containerd or fs, not "${o.store}"`);
  if (!LOG_LEVELS.includes(o.logLevel)) throw new Error(`--log-level must be one of ${LOG_LEVELS.join(', ')}, not "${o.logLevel}"`);
  if (o.upstream !== true && (o.upstreamAuth || o.upstreamEndpoint.length > 0)) {
    throw new Error('--upstream-auth and --upstream-endpoint do nothing without --upstream (pull-through is off): add it, or leave them out');
  }
  const config: Config = {
    dataDir: o.dataDir,
    store: o.store,
    containerdSocket: o.containerdSocket,
    containerdNamespace: o.containerdNamespace,
    registryAddr: o.registryAddr,
    registryToken: o.registryToken || undefined,
    registryTokenFile: o.registryTokenFile || undefined,
    registryAllow: o.registryAllow,
    writeGroup: o.writeGroup,
    maxUploadSize: parseSize(o.maxUploadSize, '--max-upload-size', 1),
    uploadTimeoutMs: parseDuration(o.uploadTimeout, '--upload-timeout', 1),
    gcDelayMs: parseDuration(o.gcDelay, '--gc-delay'),
    maxConnections: parseCount(o.maxConnections, '--max-connections'),
    maxUploads: parseCount(o.maxUploads, '--max-uploads'),
    maxUploadsPerClient: parseCount(o.maxUploadsPerClient, '--max-uploads-per-client'),
    shutdownGraceMs: parseDuration(o.shutdownGrace, '--shutdown-grace'),
    logLevel: o.logLevel,
    nodeName: o.nodeName,
    labels: parseLabels(o.label),
    p2pListen: alone ? [MESH_LISTEN_ALONE.p2p] : o.p2pListen,
    bootstrap: o.bootstrap,
    mdns: o.mdns === true,
    swarmKeyFile: o.swarmKey || undefined,
    recordTtlMs: parseDuration(o.recordTtl, '--record-ttl', 1000),
    reconcileIntervalMs: parseDuration(o.reconcileInterval, '--reconcile-interval', 1000),
    peerAddr: alone ? MESH_LISTEN_ALONE.peer : o.peerAddr,
    peerPlaintext: o.peerPlaintext === true,
    limits: {
      upload: o.uploadLimit === undefined ? undefined : parseLimit(o.uploadLimit, '--upload-limit'),
      download: o.downloadLimit === undefined ? undefined : parseLimit(o.downloadLimit, '--download-limit'),
      replication: o.replicationLimit === undefined ? undefined : parseLimit(o.replicationLimit, '--replication-limit'),
    },
    mirrorTags: o.mirrorTags !== false,
    mirrorRegistries: o.mirrorRegistry,
    mirrorTimeoutMs: parseDuration(o.mirrorTimeout, '--mirror-timeout', 1),
    upstream: o.upstream === true,
    upstreamEndpoints: parseEndpoints(o.upstreamEndpoint),
    upstreamAuthFile: o.upstreamAuth || undefined,
    upstreamTimeoutMs: parseDuration(o.upstreamTimeout, '--upstream-timeout', 1),
    replicate: parseReplicationPolicy(o.replicate),
    diskWatermarks: diskWatermarks(o.diskHigh, o.diskLow),
    minCopies: parseMinCopies(o.minCopies),
    evictLocal: o.evictLocal === true,
    diskCheckIntervalMs: parseDuration(o.diskCheckInterval, '--disk-check-interval', 1000),
  };
  checkAddresses(config);
  return config;
}
