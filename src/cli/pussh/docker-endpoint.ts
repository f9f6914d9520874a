// Which Docker daemon to read from, decided as the docker CLI decides it: -H, --context, DOCKER_HOST,
// DOCKER_CONTEXT, then the current context in Docker's config. The CLI passes plugins none of this resolved
// (checked with docker.io 20.10 and docker 28: only the raw global options before the command word).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { DockerGlobals } from './docker-globals.js';
import { PusshError } from './errors.js';

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

export interface DockerTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  verify: boolean;
}

export type DockerEndpoint =
  | { kind: 'unix'; socketPath: string; description: string }
  | { kind: 'tcp'; host: string; port: number; tls?: DockerTls; description: string };

/** Docker's config dir: --config, DOCKER_CONFIG, ~/.docker. */
export function dockerConfigDir(globals: DockerGlobals, env: NodeJS.ProcessEnv): string {
  return globals.config || env.DOCKER_CONFIG || join(homedir(), '.docker');
}

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PusshError('usage', `reading ${what} ${path}: ${(err as Error).message}`);
  }
}

function contextName(globals: DockerGlobals, env: NodeJS.ProcessEnv, configDir: string): string {
  if (globals.context && globals.hosts.length > 0) {
    throw new PusshError('usage', 'conflicting options: either specify --host or --context, not both');
  }
  if (globals.context) return globals.context;
  if (globals.hosts.length > 0 || env.DOCKER_HOST) return 'default';
  if (env.DOCKER_CONTEXT) return env.DOCKER_CONTEXT;
  const config = readJson(join(configDir, 'config.json'), 'Docker config') as { currentContext?: string } | undefined;
  return config?.currentContext || 'default';
}

/** A file's bytes when it exists; an explicitly named file must exist. */
function pem(path: string | undefined, named: boolean): Buffer | undefined {
  if (!path || (!named && !existsSync(path))) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new PusshError('usage', `reading TLS file ${path}: ${(err as Error).message}`);
  }
}

/** The default context's TLS: --tls/--tlsverify or DOCKER_TLS_VERIFY, files from the flags or DOCKER_CERT_PATH. */
function flagTls(globals: DockerGlobals, env: NodeJS.ProcessEnv, configDir: string): DockerTls | undefined {
  const verify = globals.tlsVerify ?? !!env.DOCKER_TLS_VERIFY;
  if (!verify && !globals.tls) return undefined;
  const certDir = env.DOCKER_CERT_PATH || configDir;
  return {
    verify,
    ca: pem(globals.tlsCaCert ?? join(certDir, 'ca.pem'), !!globals.tlsCaCert),
    cert: pem(globals.tlsCert ?? join(certDir, 'cert.pem'), !!globals.tlsCert),
    key: pem(globals.tlsKey ?? join(certDir, 'key.pem'), !!globals.tlsKey),
  };
}

/** A context's own TLS files, stored by `docker context create --docker ca=…,cert=…,key=…`. */
function contextTls(configDir: string, id: string, skipVerify: boolean): DockerTls | undefined {
  const dir = join(configDir, 'contexts', 'tls', id, 'docker');
  const tls = { ca: pem(join(dir, 'ca.pem'), false), cert: pem(join(dir, 'cert.pem'), false), key: pem(join(dir, 'key.pem'), false) };
  if (!tls.ca && !tls.cert && !tls.key) return undefined;
  return { ...tls, verify: !skipVerify };
}

function parseHost(host: string, tls: DockerTls | undefined, via: string): DockerEndpoint {
  const description = `docker (${host}${via})`;
  if (host.startsWith('unix://')) {
    if (tls) throw new PusshError('usage', `${description}: TLS options apply to tcp:// hosts, not to a unix socket`);
    return { kind: 'unix', socketPath: host.slice('unix://'.length), description };
  }
  if (host.startsWith('tcp://')) {
    const url = new URL(host.replace(/^tcp:/, 'http:'));
    const port = url.port ? Number(url.port) : tls ? 2376 : 2375;
    return { kind: 'tcp', host: url.hostname.replace(/^\[|\]$/g, ''), port, tls, description };
  }
  if (host.startsWith('ssh://')) {
    throw new PusshError('usage', `${description}: docker pussh cannot reach a Docker daemon over ssh://; ` +
      'run pussh on that host, or forward its socket (ssh -L /tmp/docker.sock:/var/run/docker.sock HOST) and use -H unix:///tmp/docker.sock');
  }
  throw new PusshError('usage', `${description}: unsupported Docker host; docker pussh reads from unix:// and tcp:// hosts`);
}

/** The daemon the docker CLI would talk to with these global options and this environment. */
export function resolveDockerEndpoint(globals: DockerGlobals, env: NodeJS.ProcessEnv = process.env): DockerEndpoint {
  const configDir = dockerConfigDir(globals, env);
  if (globals.hosts.length > 1) throw new PusshError('usage', `docker -H given ${globals.hosts.length} times: pussh reads from one daemon`);
  const name = contextName(globals, env, configDir);
  if (name === 'default') {
    const host = globals.hosts[0] || env.DOCKER_HOST || DEFAULT_DOCKER_HOST;
    const via = globals.hosts[0] ? ', from -H' : env.DOCKER_HOST ? ', from DOCKER_HOST' : '';
    return parseHost(host, flagTls(globals, env, configDir), via);
  }
  // Docker stores a context's metadata under the sha256 of its name.
  const id = createHash('sha256').update(name).digest('hex');
  const metaPath = join(configDir, 'contexts', 'meta', id, 'meta.json');
  const meta = readJson(metaPath, `Docker context "${name}"`) as { Endpoints?: { docker?: { Host?: string; SkipTLSVerify?: boolean } } } | undefined;
  if (!meta) throw new PusshError('usage', `Docker context "${name}" does not exist (no ${metaPath}; docker context ls lists them)`);
  const endpoint = meta.Endpoints?.docker;
  if (!endpoint?.Host) throw new PusshError('usage', `Docker context "${name}" has no docker endpoint host (${metaPath})`);
  return parseHost(endpoint.Host, contextTls(configDir, id, !!endpoint.SkipTLSVerify), `, context ${name}`);
}
