import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { writeAtomically } from './atomic-file.js';

const dir = mkdtempSync(join(tmpdir(), 'atomic-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('keeps the mode of the file it replaces: a private config stays private', async () => {
  const file = join(dir, 'config.toml');
  writeFileSync(file, 'secret = "x"\n');
  chmodSync(file, 0o600);
  await writeAtomically(file, 'secret = "y"\n');
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(readFileSync(file, 'utf8')).toBe('secret = "y"\n');
  await writeAtomically(join(dir, 'new.json'), '{}', { mode: 0o640 });
  expect(statSync(join(dir, 'new.json')).mode & 0o777).toBe(0o640);
});

it('never replaces a file when told not to, and leaves no temporary file behind', async () => {
  const file = join(dir, 'peer.key');
  await writeAtomically(file, 'first', { exclusive: true });
  await expect(writeAtomically(file, 'second', { exclusive: true })).rejects.toMatchObject({ code: 'EEXIST' });
  expect(readFileSync(file, 'utf8')).toBe('first');
  expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
});
