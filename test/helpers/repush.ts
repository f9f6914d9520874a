// One round of issue 12's re-push race through the registry HTTP API: push a config and a layer, tag a
// manifest, delete the manifest by digest, push the same layer again, read it back. On containerd the
// layer is then unreferenced, and its GC may run while the re-push commits.
import { createHash, randomBytes } from 'node:crypto';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface RepushOutcome {
  /** Absent when every step answered as the spec says. */
  failure?: string;
  /** The re-push itself answered something other than 201. */
  repushFailed: boolean;
}

interface Answer { status: number; body: string }

async function call(url: string, init?: RequestInit): Promise<Answer> {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.text() };
}

const pushBlob = (base: string, repo: string, data: Buffer<ArrayBuffer>) => call(`${base}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, {
  method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: data,
});

function expect(step: string, res: Answer, status: number): void {
  if (res.status !== status) throw new Error(`${step}: ${res.status} ${res.body.slice(0, 300)}`);
}

/** Runs one round with a fresh random layer and config (so a fresh manifest). */
export async function repushRound(base: string, repo: string, layerBytes = 4096): Promise<RepushOutcome> {
  const layer = randomBytes(layerBytes);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, nonce: randomBytes(4).toString('hex') }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
  }));
  try {
    expect('push config', await pushBlob(base, repo, config), 201);
    expect('push layer', await pushBlob(base, repo, layer), 201);
    expect('put manifest', await call(`${base}/v2/${repo}/manifests/race`, {
      method: 'PUT', headers: { 'content-type': MANIFEST }, body: manifest,
    }), 201);
    expect('delete manifest', await call(`${base}/v2/${repo}/manifests/${sha256(manifest)}`, { method: 'DELETE' }), 202);
  } catch (err) {
    return { failure: (err as Error).message, repushFailed: false };
  }
  const again = await pushBlob(base, repo, layer);
  if (again.status !== 201) return { failure: `re-push: ${again.status} ${again.body.slice(0, 300)}`, repushFailed: true };
  const got = await fetch(`${base}/v2/${repo}/blobs/${sha256(layer)}`);
  const bytes = Buffer.from(await got.arrayBuffer());
  if (got.status !== 200 || sha256(bytes) !== sha256(layer)) {
    return { failure: `read back after re-push: ${got.status}, ${bytes.length} bytes, ${sha256(bytes)}`, repushFailed: false };
  }
  return { repushFailed: false };
}
