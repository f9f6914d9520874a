import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSshTarget } from './refs.js';
import { openTunnel, sshArgs, sshFailure } from './ssh-tunnel.js';

const target = parseSshTarget('deploy@box:2222');
const remote = { host: '127.0.0.1', port: 5000 };

describe('the ssh command line', () => {
  it('forwards a private unix socket to the remote registry, and fails fast instead of prompting', () => {
    const args = sshArgs({ target, remote, identity: '/k', sshOptions: ['ProxyJump=bastion'] }, '/tmp/x/registry.sock');
    expect(args.slice(0, 4)).toEqual(['-N', '-T', '-o', 'ProxyJump=bastion']); // the user's options first: ssh keeps the first value
    expect(args).toContain('ExitOnForwardFailure=yes');
    expect(args).toContain('BatchMode=yes');
    expect(args.join(' ')).toContain('-i /k -p 2222 -l deploy -L /tmp/x/registry.sock:127.0.0.1:5000 -- box');
    expect(args).not.toContain('StrictHostKeyChecking=no');
  });

  it('prompts only when interactive; --no-host-key-check skips known_hosts; IPv6 registries are bracketed', () => {
    const args = sshArgs({ target, remote: { host: '::1', port: 5000 }, interactive: true, noHostKeyCheck: true }, '/s');
    expect(args).not.toContain('BatchMode=yes');
    expect(args).toContain('StrictHostKeyChecking=no');
    expect(args).toContain('/s:[::1]:5000');
  });
});

describe("ssh's failures", () => {
  it('are told apart from its own words', () => {
    expect(sshFailure(target, 'deploy@box: Permission denied (publickey).', 'exit status 255').kind).toBe('ssh-auth');
    expect(sshFailure(target, 'Host key verification failed.', 'exit status 255').kind).toBe('ssh-auth');
    expect(sshFailure(target, 'ssh: connect to host box port 2222: Connection refused', 'exit status 255').kind).toBe('ssh-unreachable');
    expect(sshFailure(target, 'ssh: Could not resolve hostname box: Name or service not known', 'exit status 255').kind).toBe('ssh-unreachable');
    const e = sshFailure(target, 'Warning: Permanently added \'[box]:2222\' to the list of known hosts.\nPermission denied (publickey).', 'exit status 255');
    expect(e.message).toMatch(/authentication failed/);
    expect(e.message).not.toMatch(/Permanently added/);
  });
});

describe('openTunnel', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fake-ssh-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reports ssh's stderr as soon as ssh gives up", async () => {
    const fake = join(dir, 'ssh');
    await writeFile(fake, '#!/bin/sh\necho "deploy@box: Permission denied (publickey)." >&2\nexit 255\n');
    await chmod(fake, 0o755);
    const t0 = Date.now();
    await expect(openTunnel({ target, remote, sshCommand: fake })).rejects.toMatchObject({ kind: 'ssh-auth', message: expect.stringMatching(/Permission denied/) });
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('says when there is no ssh client at all', async () => {
    await expect(openTunnel({ target, remote, sshCommand: join(dir, 'no-such-ssh') })).rejects.toThrow(/no ssh client found/);
  });
});
