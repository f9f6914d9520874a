// The rooms of src/ and what each may import, read from the sources so that it stays true.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = dirname(fileURLToPath(import.meta.url));
/** A room may not import from these (types included). */
const FORBIDDEN: Record<string, string[]> = {
  registry: ['mirror', 'dht', 'node'],
  mirror: ['registry', 'node'],
  cli: ['node'],
  dht: ['store', 'registry'],
  store: ['registry', 'mirror', 'dht', 'node', 'cli'],
  oci: ['registry', 'mirror', 'dht', 'node', 'cli'],
  http: ['registry', 'mirror', 'dht', 'node', 'cli'],
};
const MAX_LINES = 300;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [path] : [];
  });
}

const roomOf = (path: string) => relative(SRC, path).split('/')[0];

/** The rooms a file imports from, by its relative import specifiers. */
function importedRooms(file: string): { room: string; spec: string }[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)].map(([, spec]) => ({
    spec,
    room: roomOf(normalize(join(dirname(file), spec))),
  }));
}

describe('the rooms of src/', () => {
  const files = sources(SRC);

  it('import only what their face allows', () => {
    const breaches = files.flatMap((file) => {
      const forbidden = FORBIDDEN[roomOf(file)] ?? [];
      return importedRooms(file).filter((i) => forbidden.includes(i.room)).map((i) => `${relative(SRC, file)} imports ${i.spec}`);
    });
    expect(breaches).toEqual([]);
  });

  it(`keep every source file under ${MAX_LINES} lines`, () => {
    const long = files
      .map((file) => ({ file: relative(SRC, file), lines: readFileSync(file, 'utf8').split('\n').length }))
      .filter((f) => f.lines > MAX_LINES);
    expect(long).toEqual([]);
  });
});
