// What every answer must satisfy, and a short report of what did not: grouped by problem and request shape.
import { MAX_MANIFEST_BYTES } from '../../src/oci/limits.js';
import type { FuzzRequest, Outcome } from './http.js';

export interface Exchange {
  plane: 'registry' | 'peer';
  /** Which case sent it: `seed=1 registry#42`. */
  where: string;
  req: FuzzRequest;
  out: Outcome;
}

/** Paths found on any machine; this run's own directories (data dir, checkout, home) are given to leak(). */
const PATH_MARKERS: [string, RegExp][] = [
  ['/tmp/', /\/tmp\//],
  ['/home/', /\/home\//],
  ['node_modules', /node_modules/],
  ['stack frame', /(?:\\n|\n)\s*at \S|\bat (?:file:|node:)|\bat \S+ \((?:file:|node:|\/)/],
];

/** Absolute server paths or stack frames in the text; `own` are this run's own directories. */
export function leak(text: string, own: string[]): string | undefined {
  for (const p of own) if (text.includes(p)) return 'data dir';
  return PATH_MARKERS.find(([, re]) => re.test(text))?.[0];
}

/** The spec's error body: {"errors":[{"code":…,"message":…}, …]}. */
export function isErrorBody(body: Buffer): boolean {
  try {
    const errors = JSON.parse(body.toString('utf8'))?.errors;
    return Array.isArray(errors) && errors.length > 0
      && errors.every((e) => typeof e?.code === 'string' && typeof e?.message === 'string');
  } catch {
    return false;
  }
}

/** Bodies worth reading for paths: errors and text, not blob bytes. */
function readable(out: Outcome): boolean {
  const type = String(out.headers['content-type'] ?? '');
  return (out.status ?? 0) >= 300 || type === '' || /json|text/.test(type);
}

export function problems(x: Exchange, own: string[]): string[] {
  const { req, out } = x;
  const found: string[] = [];
  if (out.error === 'timeout') found.push('hang');
  if (out.error === 'no answer' && !req.malformed) found.push(`no answer (${out.detail})`);
  if (out.error === 'cut') found.push('answer cut short');
  if (out.error === 'unsendable') found.push(`fuzzer could not send it: ${out.detail}`);
  if (out.status === undefined) return found;
  const status = out.status;
  if (status >= 500 && !(status === 503 && out.headers['retry-after'])) found.push('5xx');
  if (req.expect !== undefined && status !== req.expect) found.push(`not ${req.expect}`);
  const headerText = Object.values(out.headers).flat().join('\n');
  const where = leak((readable(out) ? out.body.toString('latin1') : '') + headerText, own);
  if (where) found.push(`server path in answer (${where})`);
  if (x.plane === 'registry' && status >= 400 && status < 500 && req.method !== 'HEAD' && !req.malformed && !isErrorBody(out.body)) {
    found.push('4xx body not the registry error JSON');
  }
  const declared = Number(out.headers['content-length'] ?? out.bytes);
  if (x.plane === 'registry' && /\/manifests\/[^/?]+(\?|$)/.test(req.path) && status < 300 && declared > MAX_MANIFEST_BYTES) {
    found.push(`manifest answer of ${declared} bytes, over the manifest limit`);
  }
  return found;
}

/** Long runs of one character shown as `a…×300`, then clipped. */
export function clip(s: string, n: number): string {
  const t = s.replace(/(.)\1{11,}/g, (m, c: string) => `${c}…×${m.length}`).replace(/[\x00-\x1f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return t.length > n ? `${t.slice(0, n)}…` : t;
}

/** The route a path asks for, with names, references and ids left out, and the query's keys. */
export function shape(path: string): string {
  const q = path.indexOf('?');
  const p = q < 0 ? path : path.slice(0, q);
  const keys = q < 0 ? '' : `?${[...new Set(path.slice(q + 1).split('&').map((kv) => kv.split('=')[0]))].join('&')}`;
  const routes: [RegExp, string][] = [
    [/^\/v2\/?$/, '/v2/'],
    [/^\/v2\/_catalog$/, '/v2/_catalog'],
    [/^\/v2\/.+\/tags\/list$/, '/v2/{name}/tags/list'],
    [/^\/v2\/.+\/manifests\/[^/]+$/, '/v2/{name}/manifests/{ref}'],
    [/^\/v2\/.+\/blobs\/uploads\/?$/, '/v2/{name}/blobs/uploads/'],
    [/^\/v2\/.+\/blobs\/uploads\/[^/]+$/, '/v2/{name}/blobs/uploads/{id}'],
    [/^\/v2\/.+\/blobs\/[^/]+$/, '/v2/{name}/blobs/{digest}'],
    [/^\/v2\/.+\/referrers\/[^/]+$/, '/v2/{name}/referrers/{digest}'],
    [/^\/peer\/v1\/blobs\//, '/peer/v1/blobs/{digest}'],
  ];
  const route = routes.find(([re]) => re.test(p))?.[1] ?? clip(p, 40);
  return `${route}${clip(keys, 40)}`;
}

/** The error an answer states (its message when it is the registry's JSON); nothing for a success. */
function excerpt(out: Outcome): string {
  if (out.status === undefined || out.status < 300) return '';
  const text = out.body.toString('utf8');
  try {
    const e = JSON.parse(text)?.errors?.[0];
    if (typeof e?.message === 'string') return `${e.code}: ${e.message}`;
  } catch {
    // not JSON: shown as it is
  }
  return text.replace(/[^\x20-\x7e]/g, '.');
}

/** An excerpt with the parts that differ between instances of one bug (digests, ids, paths) left out. */
const normalised = (s: string) =>
  clip(s.replace(/[0-9a-f]{64}/gi, '<hex>').replace(/[0-9a-f]{8}-[0-9a-f-]{27}/gi, '<id>').replace(/'[^']*'/g, "'…'").replace(/\/[^\s'",:]*/g, '<path>'), 70);

export function format(x: Exchange): string {
  const { req, out } = x;
  const headers = Object.entries(req.headers ?? {}).map(([k, v]) => `${k}: ${clip(String(v), 40)}`).join(', ');
  const bodyLen = (req.body ?? []).reduce((s, p) => s + p.length, 0);
  const answer = out.status === undefined ? out.error : `${out.status}${out.error ? ` (${out.error})` : ''}`;
  return `${x.where}: ${req.method} ${clip(req.path, 110)} {${headers}} body=${bodyLen}B${req.short ? ' (short)' : ''}`
    + ` -> ${answer} in ${Math.round(out.ms)} ms ${clip(excerpt(out), 160)}`;
}

export class Findings {
  readonly #groups = new Map<string, { count: number; problems: string[]; examples: Exchange[] }>();
  checked = 0;

  add(x: Exchange, own: string[]): void {
    this.checked++;
    const found = problems(x, own);
    if (found.length === 0) return;
    // One bug answers alike on many routes: grouped by its message, or by route when there is none (HEAD).
    const route = `${x.req.method} ${shape(x.req.path)}`;
    const text = normalised(excerpt(x.out));
    const key = [found.join(' + '), x.out.status ?? x.out.error, text === '' ? route : text].join(' | ');
    const group = this.#groups.get(key) ?? { count: 0, problems: found, examples: [] };
    this.#groups.set(key, group);
    group.count++;
    const seen = group.examples.map((e) => `${e.req.method} ${shape(e.req.path)}`);
    if (group.examples.length < 3 && !seen.includes(route)) group.examples.push(x);
  }

  get size(): number {
    return this.#groups.size;
  }

  report(header: string): string {
    const lines = [`${header}: ${this.#groups.size} kinds of failure in ${this.checked} answers`];
    for (const [key, g] of [...this.#groups].sort((a, b) => b[1].count - a[1].count)) {
      lines.push(`- ${g.count}x ${key}`);
      for (const x of g.examples) lines.push(`    ${format(x)}`);
    }
    return lines.join('\n');
  }
}
