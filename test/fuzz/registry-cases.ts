// Registry cases: each is one request or a short scenario (an upload, a push and what follows it), drawn
// from its own seeded stream. Writes never touch World.keep, whose content is checked at the end.
import { createHash } from 'node:crypto';
import type { FuzzRequest, Outcome } from './http.js';
import { malformedUri, oddDigest, oddHeaders, oddName, oddQuery, oddRef, oddTag } from './inputs.js';
import { oddManifest } from './manifests.js';
import type { Rng } from './prng.js';
import type { World } from './world.js';

export type Send = (req: FuzzRequest) => Promise<Outcome>;
export interface Ctx {
  rng: Rng;
  w: World;
  send: Send;
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'];

/** A request, marked malformed when its path is not a valid URI. */
function req(method: string, path: string, extra: Partial<FuzzRequest> = {}): FuzzRequest {
  return { method, path, ...extra, malformed: extra.malformed || malformedUri(path) };
}

function oddUploadId(rng: Rng): string {
  return rng.weighted<string>([
    [6, () => `${rng.hex(8)}-${rng.hex(4)}-4${rng.hex(3)}-a${rng.hex(3)}-${rng.hex(12)}`],
    [2, () => rng.pick(['..', '%2e%2e', '%00', 'x'.repeat(300), 'a%2fb', 'UPPER', '0', '-1', '%20'])],
  ]);
}

function oddBody(rng: Rng): Partial<FuzzRequest> {
  return rng.weighted<Partial<FuzzRequest>>([
    [10, {}],
    [6, () => ({ body: [rng.bytes(rng.int(1, 3000))] })],
    [3, () => ({ body: [Buffer.from(rng.pick(['{}', '[]', 'null', '{"schemaVersion":2}', '{"blobs":[null]}', '{']))] })],
    [1, () => ({ body: [rng.bytes(rng.int(0, 64))], headers: { 'content-length': String(rng.int(1000, 1e12)) }, short: true })],
    [1, () => ({ body: [rng.bytes(100), rng.bytes(100)], headers: { 'transfer-encoding': 'chunked' } })],
  ]);
}

/** One request to any route, with any method, name, reference, query, headers and body. */
async function probe({ rng, w, send }: Ctx): Promise<void> {
  const method = rng.pick(METHODS);
  const name = oddName(rng, w, !['GET', 'HEAD'].includes(method));
  const route = rng.weighted<string>([
    [3, 'tags/list'],
    [5, () => `manifests/${oddRef(rng, w)}`],
    [3, () => rng.pick(['blobs/uploads/', 'blobs/uploads'])],
    [3, () => `blobs/uploads/${oddUploadId(rng)}`],
    [4, () => `blobs/${oddDigest(rng, w)}`],
    [2, () => `referrers/${oddDigest(rng, w)}`],
  ]);
  const path = rng.weighted<string>([
    [20, `/v2/${name}/${route}`],
    [1, '/v2/_catalog'],
    [1, '/v2/'],
  ]) + oddQuery(rng, w);
  const body = oddBody(rng);
  const odd = oddHeaders(rng);
  await send(req(method, path, { ...body, headers: { ...odd.headers, ...body.headers }, malformed: odd.malformed }));
}

/** An upload session: chunks in and out of order, odd ranges, status, finish, cancel, races. */
async function upload({ rng, w, send }: Ctx): Promise<void> {
  const name = rng.chance(0.85) ? rng.pick(w.repos) : oddName(rng, w, true);
  const start = await send(req('POST', `/v2/${name}/blobs/uploads/`));
  const location = typeof start.headers.location === 'string' ? start.headers.location : `/v2/${name}/blobs/uploads/${oddUploadId(rng)}`;
  const data = rng.bytes(rng.int(0, 64_000));
  let offset = 0;
  const chunk = (n: number) => data.subarray(offset, Math.min(data.length, offset + n));
  const patch = async () => {
    const part = chunk(rng.int(0, 30_000));
    const withRange = rng.chance(0.7);
    const headers: Record<string, string> = withRange && part.length > 0 ? { 'content-range': `${offset}-${offset + part.length - 1}` } : {};
    const out = await send(req('PATCH', location, { body: [part], headers }));
    if (out.status === 202) offset += part.length;
  };
  const finish = (digest: string, body: Buffer[] = []) => req('PUT', `${location}?digest=${digest}`, { body });
  for (let i = rng.int(1, 5); i > 0; i--) {
    await rng.weighted<Promise<unknown>>([
      [6, () => patch()],
      [2, () => send(req('PATCH', location, { body: [rng.bytes(100)], headers: { 'content-range': `${offset + rng.int(1, 500)}-${offset + 600}` } }))],
      [2, () => send(req('PATCH', location, { body: [chunk(200)], ...oddHeaders(rng) }))],
      [3, () => send(rng.weighted<FuzzRequest>([
        [3, () => finish(sha(data.subarray(0, offset)))],
        [2, () => finish(sha(data), [data.subarray(offset)])],
        [1, () => finish(sha(data))],
        [1, () => finish(oddDigest(rng, w), rng.chance(0.5) ? [chunk(1000)] : [])],
        [1, () => req('PUT', location)],
      ]))],
      [2, () => send(req('GET', location))],
      [2, () => send(req('DELETE', location))],
      [1, () => send(req('PATCH', location.replace(`/v2/${name}/`, `/v2/${rng.pick(w.repos)}/`), { body: [chunk(10)] }))],
      [3, () => race(rng, w, send, location, data, offset)],
    ]);
  }
  // The session is usually over by now: ask once more.
  await send(req(rng.pick(['GET', 'PATCH', 'PUT', 'DELETE']), location, rng.chance(0.5) ? { body: [rng.bytes(10)] } : {}));
}

/** A PATCH or PUT whose body is still arriving while another request ends, writes or finishes the same upload. */
async function race(rng: Rng, w: World, send: Send, location: string, data: Buffer, offset: number): Promise<unknown> {
  const rest = data.length - offset >= 2 ? data.subarray(offset) : rng.bytes(rng.int(2, 20_000));
  const parts = [rest.subarray(0, rest.length >> 1), rest.subarray(rest.length >> 1)];
  const first = rng.chance(0.6) ? req('PATCH', location) : req('PUT', `${location}?digest=${sha(data)}`);
  const other = rng.weighted<FuzzRequest>([
    [4, req('DELETE', location)],
    [1, () => req('PATCH', location, { body: [rng.bytes(10)] })],
    [1, () => req('PUT', `${location}?digest=${oddDigest(rng, w)}`)],
  ]);
  // Long enough for the server to be reading the first body when the other request comes.
  const pause = rng.int(50, 150);
  return send({ ...first, body: parts, between: async () => (await sleep(pause), await send(other)) });
}

/** Monolithic pushes and mounts, then what a client might do with the blob. */
async function monolithic({ rng, w, send }: Ctx): Promise<void> {
  const name = rng.chance(0.85) ? rng.pick(w.repos) : oddName(rng, w, true);
  const data = rng.bytes(rng.int(0, 20_000));
  const digest = rng.weighted<string>([[5, sha(data)], [2, () => oddDigest(rng, w)]]);
  const query = rng.weighted<string>([
    [5, `?digest=${digest}`],
    [2, () => `?mount=${oddDigest(rng, w)}&from=${rng.pick([w.keep, ...w.repos, 'nope'])}`],
    [1, () => `?digest=${digest}&digest=${oddDigest(rng, w)}`],
    [1, () => `?mount=${sha(data)}&digest=${digest}`],
  ]);
  await send(req('POST', `/v2/${name}/blobs/uploads/${query}`, { body: rng.chance(0.9) ? [data] : [], ...oddHeaders(rng, data.length) }));
  if (rng.chance(0.5)) await send(req(rng.pick(['DELETE', 'GET', 'HEAD']), `/v2/${name}/blobs/${rng.chance(0.7) ? sha(data) : oddDigest(rng, w)}`));
  if (rng.chance(0.3)) await send(req('GET', `/v2/${name}/blobs/${sha(data)}`, oddHeaders(rng, data.length)));
}

/** A manifest or index push (mostly odd), then reads and deletes around it. */
async function manifest({ rng, w, send }: Ctx): Promise<void> {
  const name = rng.chance(0.9) ? rng.pick(w.repos) : oddName(rng, w, true);
  const freshBytes = rng.chance(0.5) ? rng.bytes(rng.int(1, 5000)) : Buffer.from(JSON.stringify({ fuzz: rng.hex(8) }));
  const fresh = { mediaType: 'application/octet-stream', digest: sha(freshBytes), size: freshBytes.length };
  const { body, type } = oddManifest(rng, w, fresh);
  if (body.includes(fresh.digest)) await send(req('POST', `/v2/${name}/blobs/uploads/?digest=${fresh.digest}`, { body: [freshBytes] }));
  const digest = sha(body);
  const ref = rng.weighted<string>([[5, () => rng.pick(['fuzz', 'f1', 'f2', 'latest'])], [2, digest], [1, () => oddRef(rng, w)]]);
  const odd = rng.chance(0.1) ? oddHeaders(rng) : { headers: {}, malformed: false };
  const headers = { ...(type === undefined ? {} : { 'content-type': type }), ...odd.headers };
  const put = await send(req('PUT', `/v2/${name}/manifests/${ref}`, { body: [body], headers, malformed: odd.malformed }));
  if (put.status !== 201) return;
  const by = () => (rng.chance(0.5) ? digest : ref);
  if (rng.chance(0.6)) await send(req(rng.pick(['GET', 'HEAD']), `/v2/${name}/manifests/${by()}`, { headers: { accept: '*/*' } }));
  if (rng.chance(0.15)) await send(req('GET', `/v2/${name}/referrers/${rng.pick(w.manifests).digest}`));
  if (rng.chance(0.3)) await send(req('GET', `/v2/${name}/tags/list${oddQuery(rng, w)}`));
  if (rng.chance(0.5)) await send(req('DELETE', `/v2/${name}/blobs/${rng.pick(w.blobs).digest}`));
  if (rng.chance(0.5)) await send(req('DELETE', `/v2/${name}/manifests/${by()}`));
  if (rng.chance(0.3)) await send(req('GET', `/v2/${name}/manifests/${by()}`));
}

/** Reads of what the registry holds, with odd ranges, queries and references. */
async function read({ rng, w, send }: Ctx): Promise<void> {
  const name = rng.chance(0.7) ? rng.pick([w.keep, ...w.repos]) : oddName(rng, w, false);
  const method = rng.pick(['GET', 'HEAD']);
  // GETs of the 16 MiB blob are few: each one sends it whole.
  const blob = rng.pick(rng.chance(0.05) || method === 'HEAD' ? w.blobs : w.blobs.slice(0, -1));
  await rng.weighted<Promise<unknown>>([
    [5, () => send(req(method, `/v2/${name}/blobs/${blob.digest}`, oddHeaders(rng, blob.size)))],
    // A blob asked for as a manifest: every seeded blob, now and then the 16 MiB layer.
    [3, () => send(req(method, `/v2/${name}/manifests/${(rng.chance(0.1) ? w.big : rng.pick(w.blobs)).digest}`, { headers: { accept: '*/*' } }))],
    [3, () => send(req(method, `/v2/${name}/manifests/${rng.chance(0.7) ? oddTag(rng, w) : rng.pick(w.manifests).digest}`))],
    [4, () => send(req('GET', `/v2/${name}/tags/list${oddQuery(rng, w)}`))],
    [3, () => send(req('GET', `/v2/_catalog${oddQuery(rng, w)}`))],
    [2, () => send(req('GET', `/v2/${name}/referrers/${rng.chance(0.7) ? rng.pick(w.manifests).digest : oddDigest(rng, w)}${oddQuery(rng, w)}`))],
    [1, () => send(req(method, rng.pick(['/v2/', '/v2']), oddHeaders(rng)))],
  ]);
}

export async function registryCase(ctx: Ctx): Promise<void> {
  const family = ctx.rng.weighted<(c: Ctx) => Promise<void>>([[48, () => probe], [14, () => upload], [6, () => monolithic], [16, () => manifest], [16, () => read]]);
  await family(ctx);
}
