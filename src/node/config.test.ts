import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from './config.js';

describe('meshd configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-config-'));
  afterEach(() => {
    for (const name of ['MESHD_REGISTRY_ADDR', 'MESHD_PEER_PLAINTEXT', 'MESHD_NO_MIRROR_TAGS', 'MESHD_UPSTREAM']) delete process.env[name];
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('has defaults a local daemon needs', () => {
    const c = parseConfig([]);
    expect(c).toMatchObject({ store: 'auto', registryAddr: '127.0.0.1:5000', containerdNamespace: 'default', maxUploadSize: 64 * 1024 ** 3 });
  });

  it('keeps the mesh on loopback without a swarm key, unless a listener is named: never open by accident', () => {
    const open = { p2pListen: ['/ip4/0.0.0.0/tcp/4001'], peerAddr: '0.0.0.0:5001' };
    expect(parseConfig([])).toMatchObject({ p2pListen: ['/ip4/127.0.0.1/tcp/4001'], peerAddr: '127.0.0.1:5001' });
    expect(parseConfig(['--swarm-key', '/etc/layermesh/swarm.key'])).toMatchObject(open);
    expect(parseConfig(['--p2p-listen', '/ip4/0.0.0.0/tcp/4001', '--peer-addr', '0.0.0.0:5001'])).toMatchObject(open);
    // One named alone: the other would be open to anyone, or on loopback while its peer is not (announced, never served).
    expect(() => parseConfig(['--p2p-listen', '/ip4/127.0.0.1/tcp/4002'])).toThrow('without --swarm-key, name both --p2p-listen and --peer-addr, or neither');
    const file = join(dir, 'open.yaml');
    writeFileSync(file, 'peer-addr: 0.0.0.0:5001\n');
    expect(() => parseConfig(['--config', file])).toThrow(/name both/);
    expect(parseConfig(['--config', file, '--swarm-key', 'k'])).toMatchObject(open);
    // Joining a mesh that would stay on loopback: said, not done half.
    expect(() => parseConfig(['--bootstrap', '/ip4/10.0.0.1/tcp/4001'])).toThrow(/--bootstrap and --mdns join a mesh, which without --swarm-key stays on loopback/);
    expect(() => parseConfig(['--mdns'])).toThrow(/without --swarm-key stays on loopback/);
    expect(parseConfig(['--mdns', '--swarm-key', 'k']).mdns).toBe(true);
  });

  it('checks the listeners\' and peers\' addresses as a configuration error', () => {
    expect(() => parseConfig(['--swarm-key', 'k', '--peer-addr', '5001'])).toThrow('--peer-addr: expected HOST:PORT, got "5001"');
    expect(() => parseConfig(['--registry-addr', '127.0.0.1:70000'])).toThrow('--registry-addr: expected HOST:PORT');
    expect(() => parseConfig(['--swarm-key', 'k', '--bootstrap', '10.0.0.1:4001'])).toThrow(/--bootstrap: "10\.0\.0\.1:4001" is not a multiaddr/);
    expect(() => parseConfig(['--swarm-key', 'k', '--p2p-listen', '/ip4/0.0.0.0/tcp/x'])).toThrow(/--p2p-listen: .* is not a multiaddr/);
  });

  it('takes disk watermarks as a pair of sizes or of percentages', () => {
    expect(parseConfig([])).toMatchObject({ diskWatermarks: undefined, minCopies: 2, evictLocal: false, diskCheckIntervalMs: 60_000 });
    expect(parseConfig(['--disk-high', '80%', '--disk-low', '60%', '--min-copies', '0', '--evict-local']))
      .toMatchObject({ diskWatermarks: { high: { percent: 80 }, low: { percent: 60 } }, minCopies: 0, evictLocal: true });
    expect(parseConfig(['--disk-high', '50GiB', '--disk-low', '40GiB']).diskWatermarks).toEqual({ high: { bytes: 50 * 1024 ** 3 }, low: { bytes: 40 * 1024 ** 3 } });
    expect(() => parseConfig(['--disk-high', '80%'])).toThrow(/go together/);
    expect(() => parseConfig(['--disk-high', '80%', '--disk-low', '10GiB'])).toThrow(/both be sizes or both/);
    expect(() => parseConfig(['--disk-high', '80%', '--disk-low', '60%', '--min-copies', 'two'])).toThrow(/--min-copies/);
  });

  it('takes flags over environment over file over defaults', () => {
    const file = join(dir, 'meshd.yaml');
    writeFileSync(file, 'registry-addr: 127.0.0.1:7000\nstore: fs\nupload-timeout: 5m\n');
    expect(parseConfig(['--config', file])).toMatchObject({ registryAddr: '127.0.0.1:7000', store: 'fs', uploadTimeoutMs: 300_000 });
    process.env.MESHD_REGISTRY_ADDR = '127.0.0.1:7001';
    expect(parseConfig(['--config', file]).registryAddr).toBe('127.0.0.1:7001');
    expect(parseConfig(['--config', file, '--registry-addr', '127.0.0.1:7002']).registryAddr).toBe('127.0.0.1:7002');
  });

  it('takes repeatable options from flags, comma lists and YAML lists', () => {
    expect(parseConfig(['--swarm-key', 'k', '--bootstrap', '/ip4/10.0.0.1/tcp/4001', '--bootstrap', '/ip4/10.0.0.2/tcp/4001,/ip4/10.0.0.3/tcp/4001']).bootstrap)
      .toEqual(['/ip4/10.0.0.1/tcp/4001', '/ip4/10.0.0.2/tcp/4001', '/ip4/10.0.0.3/tcp/4001']);
    expect(parseConfig(['--swarm-key', 'k', '--p2p-listen', '/ip4/127.0.0.1/tcp/0']).p2pListen).toEqual(['/ip4/127.0.0.1/tcp/0']);
    expect(parseConfig(['--swarm-key', 'k']).p2pListen).toEqual(['/ip4/0.0.0.0/tcp/4001']);
    const file = join(dir, 'lists.yaml');
    writeFileSync(file, 'swarm-key: k\nbootstrap:\n  - /ip4/10.0.0.9/tcp/4001\nlabel: [zone=eu, tier=edge]\nmdns: true\n');
    expect(parseConfig(['--config', file])).toMatchObject({
      bootstrap: ['/ip4/10.0.0.9/tcp/4001'],
      labels: { zone: 'eu', tier: 'edge' },
      mdns: true,
    });
  });

  it('reads the example config shipped in config/meshd.yaml', () => {
    const file = new URL('../../config/meshd.yaml', import.meta.url).pathname;
    const config = parseConfig(['--config', file]);
    // Its swarm key still to set: the mesh stays on loopback until it is.
    expect(config).toMatchObject({ registryAddr: '127.0.0.1:5000', peerAddr: '127.0.0.1:5001', p2pListen: ['/ip4/127.0.0.1/tcp/4001'] });
    expect(parseConfig(['--config', file, '--swarm-key', '/etc/layermesh/swarm.key'])).toMatchObject({ peerAddr: '0.0.0.0:5001', p2pListen: ['/ip4/0.0.0.0/tcp/4001'] });
    expect(config.replicate.text).toBe('all');
  });

  it('keeps the peer data plane on TLS unless --peer-plaintext (flag, environment or file) says otherwise', () => {
    expect(parseConfig([]).peerPlaintext).toBe(false);
    expect(parseConfig(['--peer-plaintext']).peerPlaintext).toBe(true);
    const file = join(dir, 'plaintext.yaml');
    writeFileSync(file, 'peer-plaintext: true\n');
    expect(parseConfig(['--config', file]).peerPlaintext).toBe(true);
  });

  it('reads a switch from the environment or the file as what it says, not as being there', () => {
    process.env.MESHD_PEER_PLAINTEXT = 'false';
    process.env.MESHD_UPSTREAM = '0';
    expect(parseConfig([])).toMatchObject({ peerPlaintext: false, upstream: false });
    process.env.MESHD_PEER_PLAINTEXT = 'true';
    expect(parseConfig([]).peerPlaintext).toBe(true);
    process.env.MESHD_PEER_PLAINTEXT = 'maybe';
    expect(() => parseConfig([])).toThrow('MESHD_PEER_PLAINTEXT: expected true or false, not "maybe"');
    delete process.env.MESHD_PEER_PLAINTEXT;
    process.env.MESHD_NO_MIRROR_TAGS = 'true';
    expect(parseConfig([]).mirrorTags).toBe(false);
    delete process.env.MESHD_NO_MIRROR_TAGS;
    const file = join(dir, 'switches.yaml');
    writeFileSync(file, 'no-mirror-tags: true\nmdns: "false"\n');
    expect(parseConfig(['--config', file])).toMatchObject({ mirrorTags: false, mdns: false });
    writeFileSync(file, 'no-mirror-tags: false\n');
    expect(parseConfig(['--config', file]).mirrorTags).toBe(true);
  });

  it('takes one value where a YAML list is expected', () => {
    const file = join(dir, 'single.yaml');
    writeFileSync(file, 'swarm-key: k\nbootstrap: /ip4/10.0.0.9/tcp/4001\nlabel: role=web\nregistry-allow: 10.0.0.0/8\n');
    expect(parseConfig(['--config', file])).toMatchObject({ bootstrap: ['/ip4/10.0.0.9/tcp/4001'], labels: { role: 'web' }, registryAllow: ['10.0.0.0/8'] });
  });

  it('refuses periods of nothing and unknown log levels, naming the option', () => {
    expect(() => parseConfig(['--reconcile-interval', '0'])).toThrow('--reconcile-interval: 0 is too short');
    expect(() => parseConfig(['--record-ttl', '0s'])).toThrow('--record-ttl: 0s is too short');
    expect(() => parseConfig(['--upload-timeout', 'soon'])).toThrow('--upload-timeout: not a duration');
    const file = join(dir, 'level.yaml');
    writeFileSync(file, 'log-level: verbose\n');
    expect(() => parseConfig(['--config', file])).toThrow('--log-level must be one of trace, debug, info, warn, error, not "verbose"');
  });

  it('refuses a registry token in a config file every user can read', () => {
    const file = join(dir, 'token.yaml');
    writeFileSync(file, 'registry-token: s3cret\n', { mode: 0o644 });
    chmodSync(file, 0o644);
    expect(() => parseConfig(['--config', file])).toThrow(/holds registry-token and every user of this host can read it: use registry-token-file/);
    chmodSync(file, 0o600);
    expect(parseConfig(['--config', file]).registryToken).toBe('s3cret');
  });

  it('names what is wrong in a config file', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'registry-adr: 1\n');
    expect(() => parseConfig(['--config', file])).toThrow(/unknown option "registry-adr"/);
    expect(() => parseConfig(['--max-upload-size', 'lots'])).toThrow(/not a size/);
  });
  it('takes the upstream options, off by default', () => {
    expect(parseConfig([])).toMatchObject({ upstream: false, upstreamEndpoints: {}, upstreamAuthFile: undefined, upstreamTimeoutMs: 30_000 });
    const c = parseConfig(['--upstream', '--upstream-endpoint', 'docker.io=http://127.0.0.1:5555', '--upstream-endpoint', 'ghcr.io=https://mirror.example/', '--upstream-auth', '/etc/auth.json']);
    expect(c).toMatchObject({ upstream: true, upstreamEndpoints: { 'docker.io': 'http://127.0.0.1:5555', 'ghcr.io': 'https://mirror.example/' }, upstreamAuthFile: '/etc/auth.json' });
    expect(() => parseConfig(['--upstream', '--upstream-endpoint', 'docker.io'])).toThrow(/REGISTRY=/);
    expect(() => parseConfig(['--upstream', '--upstream-endpoint', 'docker.io=ftp://x'])).toThrow(/REGISTRY=/);
    // A password in the URL would be in every warning about that registry: refused, and not repeated in the error.
    expect(() => parseConfig(['--upstream', '--upstream-endpoint', 'docker.io=https://u:secret@mirror.example'])).toThrow(/--upstream-auth/);
    expect(() => parseConfig(['--upstream', '--upstream-endpoint', 'docker.io=https://u:secret@mirror.example'])).not.toThrow(/secret/);
    // Credentials filed for a pull-through that is off would be read by nobody, and nobody told.
    for (const given of [['--upstream-auth', '/etc/auth.json'], ['--upstream-endpoint', 'docker.io=http://10.0.0.5:5000']]) {
      expect(() => parseConfig(given)).toThrow('--upstream-auth and --upstream-endpoint do nothing without --upstream');
    }
  });

  it('names the option of a size it cannot use, and refuses an upload size of nothing', () => {
    expect(() => parseConfig(['--download-limit', '50Mbps'])).toThrow('--download-limit: not a size: "50Mbps"');
    expect(() => parseConfig(['--replication-limit', 'fast'])).toThrow('--replication-limit: not a size');
    expect(parseConfig(['--upload-limit', '20MB/s']).limits.upload).toBe(20e6);
    expect(() => parseConfig(['--max-upload-size', '0'])).toThrow('--max-upload-size: 0 is too small (at least 1 bytes)');
  });
});
