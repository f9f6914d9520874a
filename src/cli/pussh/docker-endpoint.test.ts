// Docker's global options and the daemon they choose, as the docker CLI chooses it.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveDockerEndpoint } from './docker-endpoint.js';
import { splitPluginArgs, type DockerGlobals } from './docker-globals.js';

const config = mkdtempSync(join(tmpdir(), 'docker-config-'));
afterAll(() => rmSync(config, { recursive: true, force: true }));

function addContext(name: string, host: string, tls?: { ca: string }): void {
  const id = createHash('sha256').update(name).digest('hex');
  mkdirSync(join(config, 'contexts', 'meta', id), { recursive: true });
  writeFileSync(join(config, 'contexts', 'meta', id, 'meta.json'), JSON.stringify({ Name: name, Metadata: {}, Endpoints: { docker: { Host: host, SkipTLSVerify: false } } }));
  if (tls) {
    mkdirSync(join(config, 'contexts', 'tls', id, 'docker'), { recursive: true });
    writeFileSync(join(config, 'contexts', 'tls', id, 'docker', 'ca.pem'), tls.ca);
  }
}
addContext('blue', 'unix:///run/blue.sock');
addContext('remote', 'tcp://10.0.0.9:2376', { ca: 'CA' });
addContext('viassh', 'ssh://me@build');

const globals = (more: Partial<DockerGlobals> = {}): DockerGlobals => ({ hosts: [], config, ...more });

describe('splitPluginArgs', () => {
  it('takes the global options before the command word, in each spelling Docker accepts', () => {
    expect(splitPluginArgs(['--config', '/c', '-H', 'unix:///a.sock', '-l', 'debug', '--tlsverify', 'pussh', 'app:1', 'h'], 'pussh'))
      .toEqual({ globals: { hosts: ['unix:///a.sock'], config: '/c', tlsVerify: true }, args: ['app:1', 'h'] });
    expect(splitPluginArgs(['--host=tcp://x:1', '--context=blue', '--tls=false', '-D', 'pussh', '--json'], 'pussh'))
      .toEqual({ globals: { hosts: ['tcp://x:1'], context: 'blue', tls: false }, args: ['--json'] });
    expect(splitPluginArgs(['-c', 'blue', 'pussh', '-H', 'not-ours'], 'pussh')?.args).toEqual(['-H', 'not-ours']);
  });

  it('is not plugin mode without the command word; refuses an option it does not know', () => {
    expect(splitPluginArgs(['app:1', 'root@h'], 'pussh')).toBeUndefined();
    expect(() => splitPluginArgs(['--orchestrator', 'swarm', 'pussh'], 'pussh')).toThrow(/--orchestrator: a global option docker pussh does not know/);
    expect(() => splitPluginArgs(['--tls=maybe', 'pussh'], 'pussh')).toThrow(/expected true or false/);
  });
});

describe('resolveDockerEndpoint', () => {
  it('defaults to /var/run/docker.sock', () => {
    expect(resolveDockerEndpoint(globals(), {})).toMatchObject({ kind: 'unix', socketPath: '/var/run/docker.sock' });
  });

  it('-H wins over the environment; DOCKER_HOST over DOCKER_CONTEXT', () => {
    const env = { DOCKER_HOST: 'unix:///env.sock', DOCKER_CONTEXT: 'blue' };
    expect(resolveDockerEndpoint(globals({ hosts: ['unix:///flag.sock'] }), env)).toMatchObject({ socketPath: '/flag.sock', description: 'docker (unix:///flag.sock, from -H)' });
    expect(resolveDockerEndpoint(globals(), env)).toMatchObject({ socketPath: '/env.sock' });
    expect(resolveDockerEndpoint(globals(), { DOCKER_CONTEXT: 'blue' })).toMatchObject({ socketPath: '/run/blue.sock', description: 'docker (unix:///run/blue.sock, context blue)' });
  });

  it('--context, then DOCKER_CONTEXT, then config.json currentContext', () => {
    writeFileSync(join(config, 'config.json'), JSON.stringify({ auths: {}, currentContext: 'blue' }));
    try {
      expect(resolveDockerEndpoint(globals(), {})).toMatchObject({ socketPath: '/run/blue.sock' });
      expect(resolveDockerEndpoint(globals({ context: 'default' }), {})).toMatchObject({ socketPath: '/var/run/docker.sock' });
      expect(resolveDockerEndpoint({ hosts: [] }, { DOCKER_CONFIG: config })).toMatchObject({ socketPath: '/run/blue.sock' });
    } finally {
      rmSync(join(config, 'config.json'));
    }
  });

  it('reads a tcp context with its TLS files; tcp with --tlsverify from the flags', () => {
    expect(resolveDockerEndpoint(globals({ context: 'remote' }), {}))
      .toMatchObject({ kind: 'tcp', host: '10.0.0.9', port: 2376, tls: { verify: true, ca: Buffer.from('CA') } });
    expect(resolveDockerEndpoint(globals({ hosts: ['tcp://h'], tlsVerify: true }), {})).toMatchObject({ kind: 'tcp', host: 'h', port: 2376, tls: { verify: true } });
    expect(resolveDockerEndpoint(globals({ hosts: ['tcp://h'] }), {})).toMatchObject({ port: 2375, tls: undefined });
    expect(() => resolveDockerEndpoint(globals({ hosts: ['tcp://h'], tlsVerify: true, tlsCaCert: join(config, 'none.pem') }), {})).toThrow(/reading TLS file .*none\.pem/);
  });

  it('says clearly what it cannot do', () => {
    expect(() => resolveDockerEndpoint(globals({ context: 'blue', hosts: ['unix:///a'] }), {})).toThrow(/either specify --host or --context, not both/);
    expect(() => resolveDockerEndpoint(globals({ context: 'nope' }), {})).toThrow(/Docker context "nope" does not exist/);
    expect(() => resolveDockerEndpoint(globals({ context: 'viassh' }), {})).toThrow(/cannot reach a Docker daemon over ssh:\/\/[^]*ssh -L/);
    expect(() => resolveDockerEndpoint(globals({ hosts: ['npipe:////./pipe/docker'] }), {})).toThrow(/unsupported Docker host/);
    expect(() => resolveDockerEndpoint(globals({ hosts: ['unix:///a'], tls: true }), {})).toThrow(/TLS options apply to tcp:\/\//);
  });
});
