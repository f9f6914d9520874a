// Secrets meshd reads: only its own, and private to their owner (or readable, not writable, by their group).
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSecretFile } from './secret-file.js';

const dir = mkdtempSync(join(tmpdir(), 'secret-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function secret(name: string, mode: number, owner?: number): string {
  const file = join(dir, name);
  writeFileSync(file, 's3cr3t');
  chmodSync(file, mode); // not through writeFileSync: the umask would take bits away
  if (owner !== undefined) chownSync(file, owner, owner);
  return file;
}

describe('readSecretFile', () => {
  it('reads a file private to its owner, or readable by its group', async () => {
    expect((await readSecretFile(secret('private', 0o600), 'token')).toString()).toBe('s3cr3t');
    expect((await readSecretFile(secret('group-read', 0o640), 'token')).toString()).toBe('s3cr3t');
  });

  it('refuses one every user can read, or every member of its group can change', async () => {
    await expect(readSecretFile(secret('open', 0o644), 'token')).rejects.toThrow(/every user of this host \(mode 644\).*chmod 600/);
    await expect(readSecretFile(secret('group-write', 0o660), 'token')).rejects.toThrow(/changed by every member of its group \(mode 660\).*chmod g-w/);
  });

  it.runIf(process.geteuid!() === 0)('refuses one another user owns (who could change it), saying whom it belongs to', async () => {
    const file = secret('theirs', 0o600, 65534);
    await expect(readSecretFile(file, 'swarm key')).rejects.toThrow(`swarm key ${file} belongs to uid 65534, who could change it: meshd (uid 0) trusts only its own or root's`);
  });

  it('says which file it could not read', async () => {
    await expect(readSecretFile(join(dir, 'absent'), 'token')).rejects.toThrow(/cannot read token .*absent: ENOENT/);
  });
});
