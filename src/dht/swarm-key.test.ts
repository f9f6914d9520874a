import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { generateSwarmKey, parseSwarmKey, readSwarmKey } from './swarm-key.js';

const dir = await mkdtemp(join(tmpdir(), 'lm-swarm-key-'));
afterAll(() => rm(dir, { recursive: true, force: true }));
const HEX = 'A1'.repeat(32);

describe('swarm keys', () => {
  test('a generated key parses, and two generated keys differ', () => {
    const text = generateSwarmKey();
    expect(text).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/);
    expect(new TextDecoder().decode(parseSwarmKey(text))).toBe(text.trimEnd());
    expect(generateSwarmKey()).not.toBe(text);
  });

  test('CRLF, blank lines and upper-case hex are normalised to what pnet reads', () => {
    const key = parseSwarmKey(`/key/swarm/psk/1.0.0/\r\n/base16/\r\n${HEX}\r\n\r\n`);
    expect(new TextDecoder().decode(key)).toBe(`/key/swarm/psk/1.0.0/\n/base16/\n${HEX.toLowerCase()}`);
  });

  test.each([
    ['', /not a swarm key/],
    [`/key/swarm/psk/2.0.0/\n/base16/\n${HEX}`, /not a swarm key/],
    [`/key/swarm/psk/1.0.0/\n/base64/\n${HEX}`, /unsupported swarm key encoding "\/base64\/"/],
    ['/key/swarm/psk/1.0.0/\n/base16/\nabcd', /64 hex digits .* got 4 characters/],
  ])('%j is refused with a clear error', (content, error) => {
    expect(() => parseSwarmKey(content, 'swarm key test')).toThrow(error);
  });

  test('readSwarmKey names the file in its errors', async () => {
    const file = join(dir, 'swarm.key');
    await writeFile(file, 'garbage', { mode: 0o600 });
    await expect(readSwarmKey(file)).rejects.toThrow(`swarm key ${file}: not a swarm key`);
    await expect(readSwarmKey(join(dir, 'missing'))).rejects.toThrow(`cannot read swarm key ${join(dir, 'missing')}`);
    await writeFile(file, generateSwarmKey());
    expect((await readSwarmKey(file)).byteLength).toBe(95);
  });

  test('a swarm key every local user can read or change is refused, with the fix', async () => {
    const file = join(dir, 'open.key');
    await writeFile(file, generateSwarmKey(), { mode: 0o600 });
    for (const mode of [0o644, 0o602]) {
      await chmod(file, mode);
      await expect(readSwarmKey(file)).rejects.toThrow(`can be read or changed by every user of this host (mode ${mode.toString(8)}): make it private with \`chmod 600 ${file}\``);
    }
    await chmod(file, 0o640);
    expect((await readSwarmKey(file)).byteLength).toBe(95);
  });
});
