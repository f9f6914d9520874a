// Fuzzing a real meshd (fs store, default loopback registry): at least 3,000 malformed or odd registry requests
// and 500 to the peer data plane, seeded and bounded. No answer may be a 5xx (but 503 with Retry-After), take
// over 10 s, show a server path, or (registry 4xx) leave the spec's error format; the daemon must live on, its
// seeded content read back, and nothing be written outside its data dir.
// FUZZ_SEED=<n> fuzzes with another seed; FUZZ_TRACE=<file> writes every exchange there as a JSON line.
// Cases that found bugs are replayed from test/fuzz/corpus.json in every run.
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, homedir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSwarmKey, parseSwarmKey } from '../src/dht/swarm-key.js';
import { peerKey } from '../src/mirror/peer-auth.js';
import { BLOB_PATH, IMAGES_PATH, SEQUENCE_PATH } from '../src/mirror/peer-protocol.js';
import { Findings } from './fuzz/checks.js';
import { send, type FuzzRequest, type Outcome } from './fuzz/http.js';
import { peerCase } from './fuzz/peer-cases.js';
import { caseSeed, Rng } from './fuzz/prng.js';
import { registryCase } from './fuzz/registry-cases.js';
import { seedWorld, type World } from './fuzz/world.js';
import { startMeshd, type Meshd } from './helpers/meshd.js';

const SEED = Number(process.env.FUZZ_SEED ?? 1) >>> 0;
const REGISTRY_CASES = 1750;
const PEER_CASES = 560;
const CONCURRENCY = 16;
const DEADLINE_MS = 10_000;
const TRACE = process.env.FUZZ_TRACE;

type Plane = 'registry' | 'peer';
interface CorpusEntry {
  plane: Plane;
  seed: number;
  case: number;
  found: string;
}
const corpus: CorpusEntry[] = JSON.parse(readFileSync(new URL('./fuzz/corpus.json', import.meta.url), 'utf8'));

let meshd: Meshd;
let world: World;
let key: Buffer;
let root: string;
let own: string[];
/** Pieces of what was sent (names, digests, ids), to recognise files made from them. */
const tokens = new Set<string>();
/** The APIs' own path words: in requests, but not input (and in other tests' temporary names, "sequence-test-…"). */
const ROUTE_WORDS = new Set([BLOB_PATH, IMAGES_PATH, SEQUENCE_PATH].flatMap((p) => p.split('/')).concat('manifests', 'referrers', '_catalog'));
let before: { tmp: Set<string>; cwd: Set<string>; root: string[] };

async function walk(dir: string, skip: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (path === skip) continue;
    out.push(relative(root, path));
    if (e.isDirectory()) out.push(...(await walk(path, skip)));
  }
  return out.sort();
}

/** Runs cases `indices` of a plane, CONCURRENCY at a time, each from its own seeded stream. */
async function fuzz(plane: Plane, seed: number, indices: number[], findings: Findings): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < indices.length) {
      const i = indices[next++];
      const where = `seed=${seed} ${plane}#${i}`;
      const base = plane === 'registry' ? meshd.url : meshd.peerUrl;
      const sendOne = async (req: FuzzRequest): Promise<Outcome> => {
        for (const t of req.path.split(/[/?&=]/)) if (t.length >= 8 && !ROUTE_WORDS.has(t)) tokens.add(t);
        const out = await send(base, req, DEADLINE_MS);
        findings.add({ plane, where, req, out }, own);
        if (TRACE) trace(where, req, out);
        return out;
      };
      const rng = new Rng(caseSeed(seed, plane, i));
      if (plane === 'registry') await registryCase({ rng, w: world, send: sendOne });
      else await peerCase({ rng, w: world, send: sendOne, key, target: meshd.peerId });
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

function trace(where: string, req: FuzzRequest, out: Outcome): void {
  const body = Buffer.concat(req.body ?? []).toString('latin1').slice(0, 2000);
  const { status, error, ms } = out;
  appendFileSync(TRACE!, `${JSON.stringify({ where, method: req.method, path: req.path, headers: req.headers, body, status, error, ms: Math.round(ms),
    answer: out.body.toString('latin1').slice(0, 300) })}\n`);
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const rerun = `rerun with FUZZ_SEED=${SEED}`;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'layermesh-fuzz-'));
  await mkdir(join(root, 'sentinel'));
  await writeFile(join(root, 'sentinel', 'keep'), 'sentinel');
  await writeFile(join(root, 'swarm.key'), generateSwarmKey(), { mode: 0o600 });
  key = peerKey(parseSwarmKey(await readFile(join(root, 'swarm.key'))));
  before = { tmp: new Set(await readdir(tmpdir())), cwd: new Set(await readdir(process.cwd())), root: await walk(root, '') };
  meshd = await startMeshd(['--store', 'fs', '--swarm-key', join(root, 'swarm.key'), '--log-level', 'info'], { dataDir: join(root, 'data') });
  own = [root, meshd.dataDir, process.cwd(), homedir()].filter((d) => d.length > 1);
  world = await seedWorld(meshd.url);
}, 60_000);

afterAll(async () => {
  await meshd?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

describe('fuzz', () => {
  it('replays the cases that found bugs (test/fuzz/corpus.json)', async () => {
    const failing: string[] = [];
    for (const e of corpus) {
      const findings = new Findings();
      await fuzz(e.plane, e.seed, [e.case], findings);
      if (findings.size > 0) failing.push(findings.report(`${e.plane}#${e.case} seed=${e.seed} (found: ${e.found})`));
    }
    if (failing.length > 0) expect.fail(`${failing.length} of ${corpus.length} corpus cases still fail\n${failing.join('\n')}`);
  }, 30_000);

  it(`answers ${REGISTRY_CASES} registry cases (at least 3,000 requests) without a server error, hang or leak`, async () => {
    const findings = new Findings();
    const started = Date.now();
    await fuzz('registry', SEED, range(REGISTRY_CASES), findings);
    console.log(`fuzz seed=${SEED}: ${findings.checked} registry requests in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (findings.size > 0) expect.fail(findings.report(`registry, seed=${SEED} (${rerun})`));
    expect(findings.checked).toBeGreaterThanOrEqual(3000);
  }, 60_000);

  it(`answers ${PEER_CASES} peer data plane cases (at least 500 requests) without a server error, hang or leak`, async () => {
    const findings = new Findings();
    const started = Date.now();
    await fuzz('peer', SEED, range(PEER_CASES), findings);
    console.log(`fuzz seed=${SEED}: ${findings.checked} peer requests in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (findings.size > 0) expect.fail(findings.report(`peer data plane, seed=${SEED} (${rerun})`));
    expect(findings.checked).toBeGreaterThanOrEqual(500);
  }, 30_000);

  it('leaves the daemon alive, its seeded content intact and nothing outside its data dir', async () => {
    expect(meshd.proc.exitCode).toBeNull();
    expect(meshd.proc.signalCode).toBeNull();
    const ping = await fetch(`${meshd.url}/v2/`);
    expect(ping.status).toBe(200);
    for (const b of world.blobs) {
      const res = await fetch(`${meshd.url}/v2/${world.keep}/blobs/${b.digest}`);
      const bytes = Buffer.from(await res.arrayBuffer());
      expect(`${res.status} sha256:${createHash('sha256').update(bytes).digest('hex')}`).toBe(`200 ${b.digest}`);
    }
    for (const [tag, m] of [['v1', world.manifests[0]], ['small', world.manifests[1]], ['multi', world.manifests[2]]] as const) {
      const res = await fetch(`${meshd.url}/v2/${world.keep}/manifests/${tag}`, { method: 'HEAD' });
      expect(`${res.status} ${res.headers.get('docker-content-digest')}`).toBe(`200 ${m.digest}`);
    }
    // Beside the data dir, only what was there before; in /tmp and the working directory, nothing named after an input.
    expect(await walk(root, meshd.dataDir)).toEqual(before.root);
    expect(await readFile(join(root, 'sentinel', 'keep'), 'utf8')).toBe('sentinel');
    const made = (dir: string, old: Set<string>) => readdir(dir).then((names) => names.filter((n) => !old.has(n)));
    const named = (n: string) => [...tokens].some((t) => n.includes(t) || (n.length >= 8 && t.includes(n)));
    expect((await made(tmpdir(), before.tmp)).filter(named)).toEqual([]);
    expect(await made(process.cwd(), before.cwd)).toEqual([]);
  }, 20_000);
});
