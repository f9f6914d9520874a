// What a fleet host holds and where it took it from, as its containerd and its meshd's log tell.
import { readFileSync } from 'node:fs';
import type { MeshImageRow } from '../../src/api/admin-types.js';
import type { BuiltImage } from '../helpers/oci-image.js';
import type { FleetHost } from './host.js';

/** True when the host's containerd names `image` `name` and holds every blob of it. */
export async function holdsWhole(host: FleetHost, image: BuiltImage, name: string): Promise<boolean> {
  const [images, content] = await Promise.all([host.ctr(['images', 'ls']), host.ctr(['content', 'ls', '-q'])]);
  return images.split('\n').some((l) => l.startsWith(`${name} `) && l.includes(image.digest))
    && image.blobs.every((b) => content.includes(b.digest));
}

/** The peers a host's meshd took a blob from, as its "fetched from the mesh" line lists them. */
export function fetchedFrom(host: FleetHost, digest: string): string[] | undefined {
  for (const line of readFileSync(host.meshdLog, 'utf8').split('\n')) {
    if (!line.includes('"fetched from the mesh"') || !line.includes(digest)) continue;
    return (JSON.parse(line) as { from: string[] }).from;
  }
  return undefined;
}

/** The hosts still fetching `name`, with their bytes, as `meshctl ls --mesh` on `host` tells. */
export async function fetchingOf(host: FleetHost, name: string): Promise<MeshImageRow['fetching']> {
  const rows = await host.meshctlJson<MeshImageRow[]>(['ls', '--mesh']);
  return rows.find((r) => r.name === name)?.fetching ?? [];
}
