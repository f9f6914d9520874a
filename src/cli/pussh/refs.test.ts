import { describe, expect, it } from 'vitest';
import { PusshError } from './errors.js';
import { localName, parseHostPort, parseImageRef, parsePlatform, parseSshTarget, platformMatches } from './refs.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('image references', () => {
  it('names images as docker and containerd do', () => {
    expect(parseImageRef('app')).toMatchObject({ repo: 'docker.io/library/app', tag: 'latest', remoteName: 'app' });
    expect(localName(parseImageRef('app:1'))).toBe('docker.io/library/app:1');
    expect(parseImageRef('org/app:1')).toMatchObject({ repo: 'docker.io/org/app', remoteName: 'org/app' });
    expect(parseImageRef('ghcr.io/org/app:1')).toMatchObject({ repo: 'ghcr.io/org/app', remoteName: 'ghcr.io/org/app', tag: '1' });
    expect(parseImageRef('localhost:5000/app')).toMatchObject({ repo: 'localhost:5000/app', tag: 'latest' });
    expect(parseImageRef(`app@${D}`)).toMatchObject({ tag: undefined, digest: D });
    expect(localName(parseImageRef(`app@${D}`))).toBe(`docker.io/library/app@${D}`);
  });

  it('refuses what no registry would take, as a usage error', () => {
    for (const bad of ['App:1', 'app@sha256:xyz', 'app:-x', '../etc']) {
      expect(() => parseImageRef(bad)).toThrow(PusshError);
    }
  });
});

describe('ssh targets', () => {
  it('reads [USER@]HOST[:PORT] and its IPv6 and ssh:// forms', () => {
    expect(parseSshTarget('host')).toMatchObject({ host: 'host', user: undefined, port: undefined });
    expect(parseSshTarget('deploy@10.0.0.5:2222')).toMatchObject({ user: 'deploy', host: '10.0.0.5', port: 2222 });
    expect(parseSshTarget('root@[::1]:22')).toMatchObject({ user: 'root', host: '::1', port: 22 });
    expect(parseSshTarget('fe80::1')).toMatchObject({ host: 'fe80::1', port: undefined });
    expect(parseSshTarget('ssh://me@box:2200')).toMatchObject({ user: 'me', host: 'box', port: 2200 });
  });

  it('never lets a host become an ssh option', () => {
    for (const bad of ['-oProxyCommand=x', 'me@-x', 'host:99999', 'host:port', '@host']) {
      expect(() => parseSshTarget(bad), bad).toThrow(/expected \[USER@\]HOST\[:PORT\]/);
    }
  });
});

describe('platforms and addresses', () => {
  it('matches os/arch and asks about the variant only when given', () => {
    expect(parsePlatform('linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64', variant: undefined });
    expect(platformMatches(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(true);
    expect(platformMatches(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v6' })).toBe(false);
    expect(() => parsePlatform('linux')).toThrow(/os\/arch/);
  });

  it('reads HOST:PORT', () => {
    expect(parseHostPort('127.0.0.1:5000', 'x')).toEqual({ host: '127.0.0.1', port: 5000 });
    expect(parseHostPort('[::1]:5000', 'x')).toEqual({ host: '::1', port: 5000 });
    expect(() => parseHostPort('5000', '--remote-registry')).toThrow(/--remote-registry 5000: expected HOST:PORT/);
  });
});
