import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { basicHeader, credentialsFor, parseChallenge, parseDockerConfig, readDockerConfig } from './upstream-auth.js';

describe('WWW-Authenticate challenges', () => {
  it('parses a bearer challenge, scopes with commas included', () => {
    expect(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/app:pull,push"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/app:pull,push' },
    });
  });

  it('parses basic, bare tokens, escapes and odd spacing', () => {
    expect(parseChallenge('Basic realm="a \\"quoted\\" realm"')).toEqual({ scheme: 'basic', params: { realm: 'a "quoted" realm' } });
    expect(parseChallenge('bearer  Realm = http://h/t , service=svc')).toEqual({ scheme: 'bearer', params: { realm: 'http://h/t', service: 'svc' } });
    expect(parseChallenge('Basic')).toEqual({ scheme: 'basic', params: {} });
  });

  it('gives nothing for an absent or empty header', () => {
    expect(parseChallenge(undefined)).toBeUndefined();
    expect(parseChallenge(null)).toBeUndefined();
    expect(parseChallenge('  ')).toBeUndefined();
  });
});

describe('config.json credentials', () => {
  const dir = mkdtempSync(join(tmpdir(), 'upstream-auth-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const b64 = (s: string) => Buffer.from(s).toString('base64');

  it('reads auth (base64 user:password, colons in the password kept) and username/password fields', async () => {
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hub-user:pa:ss') },
        'ghcr.io': { username: 'gh', password: 'tok' },
        'registry.local:5000': { auth: b64('me:secret') },
        'empty.example': {},
      },
      credsStore: 'desktop',
    }), { mode: 0o600 });
    const all = await readDockerConfig(file);
    expect(credentialsFor(all, 'docker.io')).toEqual({ username: 'hub-user', password: 'pa:ss' });
    expect(credentialsFor(all, 'ghcr.io')).toEqual({ username: 'gh', password: 'tok' });
    expect(credentialsFor(all, 'registry.local:5000')).toEqual({ username: 'me', password: 'secret' });
    expect(credentialsFor(all, 'empty.example')).toBeUndefined();
    expect(credentialsFor(all, 'quay.io')).toBeUndefined();
    expect(basicHeader({ username: 'me', password: 'secret' })).toBe(`Basic ${b64('me:secret')}`);
  });

  it('accepts a file without auths and refuses malformed ones clearly', async () => {
    expect(parseDockerConfig({}).size).toBe(0);
    expect(() => parseDockerConfig({ auths: { 'x.io': { auth: b64('no-colon') } } })).toThrow(/auths\.x\.io\.auth/);
    expect(() => parseDockerConfig({ auths: 3 })).toThrow(/"auths" must be an object/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ not json', { mode: 0o600 });
    await expect(readDockerConfig(bad)).rejects.toThrow(/reading upstream credentials/);
    await expect(readDockerConfig(join(dir, 'missing.json'))).rejects.toThrow(/cannot read upstream credentials/);
  });

  it('refuses a file every local user can read: it holds passwords', async () => {
    const open = join(dir, 'open.json');
    writeFileSync(open, JSON.stringify({ auths: {} }), { mode: 0o644 });
    chmodSync(open, 0o644);
    await expect(readDockerConfig(open)).rejects.toThrow(/upstream credentials .*open\.json can be read or changed by every user of this host \(mode 644\)/);
  });
});
