// docker-compose.test.yml cannot run here: no Docker engine runs in CI. Instead this checks the file against
// meshd's and meshctl's real option parsers and against the files it refers to, so that a renamed flag, a moved
// port or a missing file fails here rather than on a user's machine. Each assertion lists what a user would see.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { multiaddr } from '@multiformats/multiaddr';
import { CommanderError, type Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { program as meshctl } from '../src/cli/meshctl.js';
import { generateSwarmKey } from '../src/dht/swarm-key.js';
import { configCommand, parseConfig, type Config } from '../src/node/config.js';
import { splitHostPort } from '../src/node/config-values.js';
import { isLoopback } from '../src/registry/access.js';
import { startMeshd } from './helpers/meshd.js';

const ROOT = new URL('..', import.meta.url).pathname;
const COMPOSE_FILE = 'docker-compose.test.yml';
const read = (rel: string) => readFileSync(join(ROOT, rel), 'utf8');
const exists = (rel: string) => {
  try {
    statSync(join(ROOT, rel));
    return true;
  } catch {
    return false;
  }
};

interface Service {
  build?: { context?: string; dockerfile?: string };
  image?: string;
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition?: string }>;
  volumes?: string[];
  expose?: (string | number)[];
  ports?: (string | number)[];
  healthcheck?: { test?: string[] };
}

// Merge keys (<<: *node) as Compose reads them.
const compose = parseYaml(read(COMPOSE_FILE), { merge: true }) as { services: Record<string, Service>; volumes?: Record<string, unknown> };
const services = compose.services;
const nodeNames = Object.keys(services).filter((name) => /^node\d+$/.test(name)).sort();
const otherNodes = nodeNames.slice(1);

// ---- the image: deploy/Dockerfile as the services build it ----

interface Instruction {
  op: string;
  args: string;
}

function dockerfileOf(service: string): { path: string; instructions: Instruction[] } {
  const build = services[service].build;
  if (!build) throw new Error(`${service} has no build: the image would have to be pulled from somewhere`);
  const path = posix.join(build.context ?? '.', build.dockerfile ?? 'Dockerfile');
  const instructions: Instruction[] = [];
  const joined = read(path).replace(/\\\n/g, ' '); // continuation lines
  for (const line of joined.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [op, ...rest] = trimmed.split(/\s+/);
    instructions.push({ op: op.toUpperCase(), args: rest.join(' ') });
  }
  return { path, instructions };
}

const dockerfile = dockerfileOf('node1');
const workdir = dockerfile.instructions.filter((i) => i.op === 'WORKDIR').at(-1)?.args ?? '/';
const copies = dockerfile.instructions.filter((i) => i.op === 'COPY').map((i) => {
  const words = i.args.split(/\s+/).filter((w) => !w.startsWith('--'));
  const dest = words.at(-1)!;
  const sources = words.slice(0, -1);
  return { sources, dest: posix.resolve(workdir, dest), intoDir: dest.endsWith('/') || sources.length > 1 };
});
const runs = dockerfile.instructions.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');

/** The repository file behind a path inside the image, by the Dockerfile's COPY lines; undefined when none copies it. */
function repoFileOf(imagePath: string): string | undefined {
  for (const { sources, dest, intoDir } of copies) {
    for (const source of sources.filter(exists)) {
      // A directory's contents land in dest; a file lands in dest, or in dest/ under its own name.
      if (statSync(join(ROOT, source)).isDirectory()) {
        if (imagePath.startsWith(`${dest}/`)) return posix.join(source, imagePath.slice(dest.length + 1));
      } else if (imagePath === (intoDir ? posix.join(dest, posix.basename(source)) : dest)) {
        return source;
      }
    }
  }
  return undefined;
}

/** The TypeScript source of a file `npm run build` writes into the image's dist/, when the build compiles it. */
function builtFrom(imagePath: string): string | undefined {
  const dist = posix.join(workdir, 'dist/');
  if (!imagePath.startsWith(dist) || !imagePath.endsWith('.js')) return undefined;
  const source = imagePath.slice(dist.length).replace(/\.js$/, '.ts');
  const build = JSON.parse(read('tsconfig.build.json')) as { include: string[] };
  const compiled = build.include.some((dir) => source.startsWith(`${dir}/`)) && !source.endsWith('.test.ts');
  return compiled && exists(source) && repoFileOf(posix.join(workdir, source)) ? source : undefined;
}

function entrypointOf(service: string): string[] {
  if (services[service].entrypoint) return services[service].entrypoint!;
  const line = dockerfile.instructions.filter((i) => i.op === 'ENTRYPOINT').at(-1);
  return line ? (JSON.parse(line.args) as string[]) : [];
}

// ---- meshd and meshctl, as their own parsers see these command lines ----

/** Parses a node's command with meshd's own options: unknown flags and bad values throw, as meshd would exit. */
function meshdConfig(service: string): Config {
  const argv = services[service].command ?? [];
  const cmd = configCommand().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) throw new Error(`meshd in ${service} would not start: ${err.message} (meshd ${argv.join(' ')})`);
    throw err;
  }
  return parseConfig(argv);
}

const configs = new Map<string, Config>();
for (const name of nodeNames) {
  try {
    configs.set(name, meshdConfig(name));
  } catch {
    // reported by the test that parses the commands
  }
}
const config = (name: string) => {
  const found = configs.get(name);
  if (!found) throw new Error(`${name}'s meshd command does not parse (see the test that parses the commands)`);
  return found;
};

function tcpPorts(addrs: string[]): number[] {
  return addrs.flatMap((a) => multiaddr(a).getComponents().filter((c) => c.name === 'tcp').map((c) => Number(c.value)));
}

/** Ports a node's meshd listens on, and on which address: registry, peer data plane, libp2p. */
function listeners(name: string): { what: string; host: string; port: number }[] {
  const c = config(name);
  const p2p = c.p2pListen.map((a) => {
    const parts = multiaddr(a).getComponents();
    return { what: 'libp2p', host: parts.find((p) => p.name === 'ip4' || p.name === 'ip6')?.value ?? '', port: tcpPorts([a])[0] };
  });
  return [{ what: 'registry', ...splitHostPort(c.registryAddr) }, { what: 'peer data plane', ...splitHostPort(c.peerAddr) }, ...p2p];
}

const PARSED = new Error('parsed');
function walk(cmd: Command, visit: (c: Command) => void): void {
  visit(cmd);
  for (const sub of cmd.commands) walk(sub, visit);
}
// Every command throws instead of exiting or printing, and no action runs: parsing is all the test wants.
walk(meshctl, (c) => c.exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} }));
meshctl.hook('preAction', () => {
  throw PARSED;
});

/** Undefined when meshctl accepts the arguments, else what meshctl would say. */
async function meshctlError(args: string[]): Promise<string | undefined> {
  try {
    await meshctl.parseAsync(args, { from: 'user' });
  } catch (err) {
    if (err === PARSED) return undefined;
    if (err instanceof CommanderError) return err.message;
    throw err;
  }
  return 'runs no command';
}

/** The arguments of every `meshctl` command line in a shell script; shell variables stand as "X". */
function meshctlCalls(script: string): string[][] {
  const calls: string[][] = [];
  for (const line of script.split('\n')) {
    if (line.trim().startsWith('#')) continue;
    // meshctl where a command starts (not inside a message that mentions it)
    for (const m of line.matchAll(/(?:^\s*|\$\(\s*|[;|&{]\s*|(?:^|\s)(?:if|until|while|then|do|exec|!)\s+)meshctl\s+(.*)/g)) {
      calls.push(shellWords(m[1]));
    }
  }
  return calls;
}

/** Words of a simple shell command, up to the first operator or redirection. */
function shellWords(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote = '';
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = '';
      else word += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else if ('|;&<>)'.includes(ch)) {
      if (inWord && !(ch === '>' && /^\d$/.test(word))) words.push(word); // 2> is a redirection, not a word
      inWord = false;
      break;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words.map((w) => w.replace(/\$\{?\w+\}?/g, 'X'));
}

/** Every meshctl command line of the fleet: healthchecks, keygen, the check script. */
function meshctlUses(): { where: string; args: string[] }[] {
  const uses: { where: string; args: string[] }[] = [];
  for (const [name, s] of Object.entries(services)) {
    const test = s.healthcheck?.test ?? [];
    if (test[0] === 'CMD' && test[1] === 'meshctl') uses.push({ where: `${name}'s healthcheck`, args: test.slice(2) });
    if (test[0] === 'CMD-SHELL') uses.push(...meshctlCalls(test.slice(1).join(' ')).map((args) => ({ where: `${name}'s healthcheck`, args })));
    const shell = entrypointOf(name)[0] === 'sh' ? entrypointOf(name).slice(2).join(' ') : '';
    uses.push(...meshctlCalls(shell).map((args) => ({ where: `${name}'s entrypoint`, args })));
  }
  uses.push(...meshctlCalls(read('deploy/check.sh')).map((args) => ({ where: 'deploy/check.sh', args })));
  return uses;
}

/** Named volume and path inside it of a path as a service sees it. */
function volumePathOf(service: string, path: string): { volume: string; rel: string; readOnly: boolean } | undefined {
  for (const spec of services[service].volumes ?? []) {
    const [source, target, mode] = spec.split(':');
    if (path.startsWith(`${target}/`)) return { volume: source, rel: path.slice(target.length + 1), readOnly: mode === 'ro' };
  }
  return undefined;
}

const containerPort = (p: string | number) => Number(String(p).split(':').at(-1)!.split('/')[0]);

describe(COMPOSE_FILE, () => {
  it('has the three nodes, the key generator and the check', () => {
    expect(nodeNames).toEqual(['node1', 'node2', 'node3']);
    expect(Object.keys(services).sort()).toEqual(['check', 'keygen', 'node1', 'node2', 'node3']);
  });

  it("gives every node a command that meshd's actual option parser accepts", () => {
    const problems: string[] = [];
    for (const name of nodeNames) {
      if (!Array.isArray(services[name].command)) problems.push(`${name} has no command list for meshd`);
      try {
        meshdConfig(name);
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
    expect(problems).toEqual([]);
  });

  it('runs containerd and meshd together in each node, on the same socket', () => {
    const problems: string[] = [];
    const entrypoint = read('deploy/entrypoint.sh');
    const socket = /^socket=(\S+)$/m.exec(entrypoint)?.[1];
    const containerdConfig = /^config=(\S+)$/m.exec(entrypoint)?.[1];
    if (!/^containerd --config "\$config"/m.test(entrypoint)) problems.push('deploy/entrypoint.sh does not start containerd with $config');
    if (!/^exec meshd "\$@"$/m.test(entrypoint)) problems.push('deploy/entrypoint.sh does not end by running meshd with the container\'s arguments');
    const toml = repoFileOf(containerdConfig ?? '/nowhere') ?? (runs.includes(`cp deploy/containerd.toml ${containerdConfig}`) ? 'deploy/containerd.toml' : undefined);
    if (!toml) problems.push(`the image has no containerd configuration at ${containerdConfig}, which deploy/entrypoint.sh starts containerd with`);
    const grpc = toml ? /\[grpc\][^[]*address\s*=\s*"([^"]+)"/.exec(read(toml))?.[1] : undefined;
    if (toml && grpc !== socket) problems.push(`containerd listens on ${grpc} (${toml}), but deploy/entrypoint.sh waits for ${socket}`);
    for (const name of nodeNames) {
      const ep = entrypointOf(name);
      if (repoFileOf(ep[0] ?? '') !== 'deploy/entrypoint.sh') problems.push(`${name} does not start through deploy/entrypoint.sh (entrypoint: ${ep.join(' ')})`);
      const c = config(name);
      if (c.store !== 'containerd') problems.push(`${name}'s meshd uses --store ${c.store}: it would fall back to its embedded store when containerd is broken`);
      if (c.containerdSocket !== socket) problems.push(`${name}'s meshd looks for containerd at ${c.containerdSocket}, but containerd listens on ${socket}`);
    }
    expect(problems).toEqual([]);
  });

  it('exposes exactly the ports meshd listens on, on addresses other containers reach', () => {
    const problems: string[] = [];
    for (const name of nodeNames) {
      const listening = listeners(name);
      const exposed = [...(services[name].expose ?? []), ...(services[name].ports ?? [])].map(containerPort);
      for (const l of listening) {
        if (!exposed.includes(l.port)) problems.push(`${name} does not expose its ${l.what} port ${l.port}`);
        if (isLoopback(l.host)) problems.push(`${name}'s ${l.what} listens on ${l.host}:${l.port}: no other container can reach it`);
      }
      for (const port of exposed) {
        if (!listening.some((l) => l.port === port)) problems.push(`${name} exposes port ${port}, on which meshd does not listen`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('guards every registry that listens beyond loopback with the one token, as meshd requires', () => {
    const problems: string[] = [];
    for (const name of nodeNames) {
      const c = config(name);
      const { host } = splitHostPort(c.registryAddr);
      if (!isLoopback(host) && !c.registryToken) problems.push(`${name}'s registry listens on ${c.registryAddr} without --registry-token: meshd refuses to start`);
      if (c.registryToken !== config('node1').registryToken) problems.push(`${name}'s registry token differs from node1's`);
    }
    expect(problems).toEqual([]);
  });

  it('names the nodes apart', () => {
    expect(new Set(nodeNames.map((n) => config(n).nodeName)).size, 'two nodes share a --node-name').toBe(nodeNames.length);
  });

  it('joins node2 and node3 to node1, on the port where node1 listens for libp2p', () => {
    const problems: string[] = [];
    if (config('node1').bootstrap.length > 0) problems.push(`node1 bootstraps to ${config('node1').bootstrap.join(', ')}: it is the one the others join`);
    const node1Ports = tcpPorts(config('node1').p2pListen);
    for (const name of otherNodes) {
      const bootstrap = config(name).bootstrap;
      if (bootstrap.length === 0) problems.push(`${name} has no --bootstrap: it would never find the mesh`);
      for (const addr of bootstrap) {
        const parts = multiaddr(addr).getComponents();
        const host = parts.find((p) => ['dns4', 'dns6', 'dns', 'ip4', 'ip6'].includes(p.name))?.value;
        const port = tcpPorts([addr])[0];
        if (host !== 'node1') problems.push(`${name} bootstraps to ${addr}, which is not node1`);
        if (!node1Ports.includes(port)) problems.push(`${name} bootstraps to port ${port}, but node1 listens for libp2p on ${node1Ports.join(', ')}`);
        if (parts.some((p) => p.name === 'p2p')) problems.push(`${name} bootstraps to a fixed peer id (${addr}), but node1's identity is new in every fleet`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('gives every node the same swarm key, the one keygen writes into the shared volume', () => {
    const problems: string[] = [];
    const keyOf = (name: string) => config(name).swarmKeyFile;
    const where = new Set<string>();
    for (const name of nodeNames) {
      const key = keyOf(name);
      if (!key) {
        problems.push(`${name} runs without --swarm-key: its mesh would be open to anyone`);
        continue;
      }
      const place = volumePathOf(name, key);
      if (!place) problems.push(`${name}'s swarm key ${key} is in no volume of ${name}`);
      else where.add(`${place.volume}:${place.rel}`);
      const dep = services[name].depends_on?.keygen?.condition;
      if (dep !== 'service_healthy') problems.push(`${name} does not wait for keygen to be healthy (key written): it may start without the key`);
    }
    if (where.size > 1) problems.push(`the nodes read different swarm keys: ${[...where].join(', ')}`);
    const [volume, rel] = [...where][0]?.split(':') ?? [];
    if (volume && !(compose.volumes && volume in compose.volumes)) problems.push(`the swarm key volume ${volume} is not declared under volumes:`);
    const keygenMount = (services.keygen.volumes ?? []).map((v) => v.split(':')).find(([source]) => source === volume);
    if (!keygenMount) problems.push(`keygen does not mount the volume ${volume} the nodes read their key from`);
    else {
      const path = posix.join(keygenMount[1], rel);
      if (keygenMount[2] === 'ro') problems.push('keygen mounts the key volume read-only: it cannot write the key');
      const script = entrypointOf('keygen').join(' ');
      if (!script.includes('meshctl swarm-key generate')) problems.push('keygen does not run meshctl swarm-key generate');
      if (!new RegExp(`(>|mv \\S+) ${path.replaceAll('.', '\\.')}(\\s|;|$)`).test(script)) problems.push(`keygen does not write ${path}, where the nodes read their key`);
      const health = services.keygen.healthcheck?.test ?? [];
      if (!health.includes(path)) problems.push(`keygen's healthcheck does not look for ${path}: the nodes may start before the key exists`);
    }
    expect(problems).toEqual([]);
  });

  it('makes check wait for all three nodes and push to node1 with node1\'s token', () => {
    const problems: string[] = [];
    const check = services.check;
    const env = check.environment ?? {};
    for (const name of nodeNames) {
      if (check.depends_on?.[name]?.condition !== 'service_healthy') problems.push(`check does not wait for ${name} to be healthy`);
      const test = services[name].healthcheck?.test ?? [];
      const url = test.includes('--node') ? test[test.indexOf('--node') + 1] : 'http://127.0.0.1:5000'; // meshctl's default
      const asked = splitHostPort(new URL(url).host);
      const registry = splitHostPort(config(name).registryAddr);
      const answers = registry.host === '0.0.0.0' || registry.host === asked.host || (isLoopback(asked.host) && isLoopback(registry.host));
      if (test[1] !== 'meshctl') problems.push(`${name}'s healthcheck does not ask meshd (${test.join(' ')})`);
      else if (asked.port !== registry.port || !answers) problems.push(`${name}'s healthcheck asks ${url}, but its registry listens on ${config(name).registryAddr}`);
    }
    const node1Registry = `node1:${splitHostPort(config('node1').registryAddr).port}`;
    if (env.CHECK_PUSH_TO !== node1Registry) problems.push(`check pushes to ${env.CHECK_PUSH_TO}, but node1's registry is ${node1Registry}`);
    if (env.CHECK_REGISTRY_TOKEN !== config('node1').registryToken) problems.push("check's token is not node1's --registry-token: its push would be refused");
    const expected = otherNodes.map((n) => `${n}:${splitHostPort(config(n).registryAddr).port}`);
    if ((env.CHECK_EXPECT_ON ?? '').split(/\s+/).sort().join(' ') !== expected.join(' ')) problems.push(`check looks for the image on ${env.CHECK_EXPECT_ON}, but the other registries are ${expected.join(' ')}`);
    if (!(Number(env.CHECK_TIMEOUT) > 0)) problems.push(`check's CHECK_TIMEOUT ${env.CHECK_TIMEOUT} is not a number of seconds`);
    if (repoFileOf(entrypointOf('check')[0] ?? '') !== 'deploy/check.sh') problems.push(`check does not run deploy/check.sh (entrypoint: ${entrypointOf('check').join(' ')})`);
    expect(problems).toEqual([]);
  });

  it("uses only meshctl commands and options that meshctl's actual program has", async () => {
    const uses = meshctlUses();
    // The scan itself must see the commands the fleet relies on, or it would check nothing.
    const commands = meshctl.commands.map((c) => c.name());
    expect(uses.map((u) => u.args.find((a) => commands.includes(a)))).toEqual(expect.arrayContaining(['status', 'swarm-key', 'peers', 'ls', 'who-has']));
    const problems: string[] = [];
    for (const { where, args } of uses) {
      const error = await meshctlError(args);
      if (error) problems.push(`${where}: meshctl ${args.join(' ')}: ${error}`);
    }
    expect(problems).toEqual([]);
  });

  it('builds one image from this repository that holds everything the services run', () => {
    const problems: string[] = [];
    for (const [name, s] of Object.entries(services)) {
      if (s.image !== services.node1.image || JSON.stringify(s.build) !== JSON.stringify(services.node1.build)) {
        problems.push(`${name} does not build the same image as node1`);
      }
    }
    const from = dockerfile.instructions.find((i) => i.op === 'FROM')?.args ?? '';
    // Node.js of Debian releases: meshd needs >= 20 (package.json engines).
    const debianNode: Record<string, number> = { bullseye: 12, bookworm: 18, trixie: 20 };
    const release = /^debian:(\w+)/.exec(from)?.[1] ?? '';
    const wanted = Number(/(\d+)/.exec((JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node)![1]);
    if (!(release in debianNode)) problems.push(`${dockerfile.path} starts FROM ${from}, whose Node.js this test does not know`);
    else if (debianNode[release] < wanted) problems.push(`${dockerfile.path} starts FROM ${from}, whose nodejs ${debianNode[release]} is older than the ${wanted} meshd needs`);
    for (const { sources } of copies) {
      for (const source of sources) if (!exists(source)) problems.push(`${dockerfile.path} copies ${source}, which does not exist`);
    }
    for (const dir of (JSON.parse(read('tsconfig.build.json')) as { include: string[] }).include) {
      if (!repoFileOf(posix.join(workdir, dir, 'x'))) problems.push(`${dockerfile.path} does not copy ${dir}, which npm run build compiles`);
    }
    if (!runs.includes('npm ci') || !runs.includes('npm run build')) problems.push(`${dockerfile.path} does not run npm ci and npm run build`);
    const bins = (JSON.parse(read('package.json')) as { bin: Record<string, string> }).bin;
    for (const [bin, target] of Object.entries(bins)) {
      if (!runs.includes(`ln -s ${posix.join(workdir, target)} /usr/local/bin/${bin}`)) problems.push(`the image has no ${bin} on PATH pointing at ${target}`);
    }
    for (const script of ['deploy/entrypoint.sh', 'deploy/check.sh']) {
      if (!exists(script)) problems.push(`${script} does not exist`);
      else if ((statSync(join(ROOT, script)).mode & 0o111) === 0 && !runs.includes(script)) problems.push(`${script} is not executable`);
    }
    expect(problems).toEqual([]);
  });

  it("builds check's image with the module it imports", async () => {
    const module = /^image_module=(\S+)$/m.exec(read('deploy/check.sh'))?.[1] ?? '';
    const source = builtFrom(module);
    expect(source, `deploy/check.sh imports ${module}, which the build does not produce`).toBeDefined();
    const imported = (await import(join(ROOT, source!))) as { buildImage?: unknown };
    expect(typeof imported.buildImage, `${source} has no buildImage, which deploy/check.sh calls`).toBe('function');
  });
});

describe('bootstrap by name, as node2 and node3 join node1', () => {
  it('finds a peer through a /dns4/ address without a peer id', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'compose-test-'));
    const key = join(dir, 'swarm.key');
    writeFileSync(key, generateSwarmKey(), { mode: 0o600 });
    try {
      const first = await startMeshd(['--store', 'fs', '--swarm-key', key]);
      try {
        const port = tcpPorts(first.p2p)[0];
        const second = await startMeshd(['--store', 'fs', '--swarm-key', key, '--bootstrap', `/dns4/localhost/tcp/${port}`]);
        try {
          const deadline = Date.now() + 20_000;
          let peers: { id: string }[] = [];
          while (Date.now() < deadline) {
            peers = (await (await fetch(`${second.url}/_mesh/v1/peers`)).json()) as { id: string }[];
            if (peers.some((p) => p.id === first.peerId)) break;
            await new Promise((r) => setTimeout(r, 200));
          }
          expect(peers.map((p) => p.id), 'meshd did not join its bootstrap peer named by /dns4/localhost').toContain(first.peerId);
        } finally {
          await second.stop();
        }
      } finally {
        await first.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
