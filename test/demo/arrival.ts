// Watching an image arrive on the hosts: what each host's store holds (its blob files, checked directly)
// and what `meshctl --json ls --mesh` says about copies in progress, drawn live on a terminal or as plain
// periodic lines elsewhere (CI logs).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { MeshImageRow } from '../../src/api/admin-types.js';
import type { Blob, BuiltImage } from '../helpers/oci-image.js';
import type { DemoHost } from './demo-fleet.js';

export const MiB = 1 << 20;
export const mib = (bytes: number) => (bytes / MiB).toFixed(1);

export interface HostView {
  name: string;
  /** Bytes of the image's config and layers on the host, complete or arriving. */
  bytes: number;
  layersHeld: number;
  /** The host holds every blob and its image record names the image. */
  complete: boolean;
  fetching: boolean;
}

const hex = (digest: string) => digest.slice('sha256:'.length);

/** The blobs among `blobs` whose verified file the host's store holds. */
export async function heldBlobs(host: DemoHost, blobs: Blob[]): Promise<Blob[]> {
  const held = await Promise.all(blobs.map(async (b) => (await stat(join(host.blobDir, hex(b.digest))).catch(() => undefined))?.size === b.size));
  return blobs.filter((_, i) => held[i]);
}

/** sha256 of the bytes the host's store holds for digest. */
export async function hashHeld(host: DemoHost, digest: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(join(host.blobDir, hex(digest)))) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** What every host holds of `image` (pushed as `name`) now, asking `observer` for the mesh's view. */
export async function look(hosts: DemoHost[], observer: DemoHost, image: BuiltImage, name: string): Promise<HostView[]> {
  const payload = image.blobs.filter((b) => b.digest !== image.digest); // config and layers: what replication copies
  // The mesh's view is best effort: a busy peer may miss one inventory round; the stores still answer.
  const rows = await observer.admin<MeshImageRow[]>('/_mesh/v1/images?mesh=1').catch(() => [] as MeshImageRow[]);
  const row = rows.find((r) => r.name === name && r.digest === image.digest);
  return Promise.all(hosts.map(async (h) => {
    const held = await heldBlobs(h, payload);
    const heldBytes = held.reduce((n, b) => n + b.size, 0);
    const fetch = row?.fetching.find((f) => f.name === h.name);
    return {
      name: h.name,
      bytes: Math.max(heldBytes, fetch?.bytes ?? 0),
      layersHeld: held.filter((b) => image.layers.some((l) => l.digest === b.digest)).length,
      complete: held.length === payload.length && !!row?.nodes.some((n) => n.name === h.name),
      fetching: !!fetch,
    };
  }));
}

/** Where the view draws: stdout, or what stands for it. */
export interface Screen {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(text: string): unknown;
}

/** Draws host views: redrawn in place a few times a second on a terminal, a line a second otherwise. */
export class ArrivalView {
  private drawn = 0;
  private lastLine = -Infinity;
  private readonly completedAt = new Map<string, number>();

  constructor(
    private readonly out: Screen,
    private readonly total: number,
    private readonly layers: number,
    private readonly source: string,
  ) {}

  get tty(): boolean {
    return !!this.out.isTTY;
  }

  /** How often to look: often enough to look live on a terminal, calm in a log. */
  get intervalMs(): number {
    return this.tty ? 250 : 500;
  }

  /** Shows views taken `seconds` after the push. */
  show(views: HostView[], seconds: number): void {
    for (const v of views) if (v.complete && v.name !== this.source && !this.completedAt.has(v.name)) this.completedAt.set(v.name, seconds);
    if (this.tty) return this.redraw(views, seconds);
    const copies = views.filter((v) => v.name !== this.source);
    for (const v of copies) {
      if (this.completedAt.get(v.name) === seconds) this.write(`${stamp(seconds)}  ${v.name} holds the whole image: ${v.layersHeld}/${this.layers} layers, ${mib(v.bytes)} MiB`);
    }
    const pending = copies.filter((v) => !v.complete);
    if (pending.length && seconds - this.lastLine >= 1) {
      this.lastLine = seconds;
      this.write(`${stamp(seconds)}  ${pending.map((v) => `${v.name} ${mib(v.bytes)}/${mib(this.total)} MiB ${v.layersHeld}/${this.layers} layers${v.fetching ? '' : ' (waiting)'}`).join('   ')}`);
    }
  }

  private redraw(views: HostView[], seconds: number): void {
    const width = 20;
    const lines = views.map((v) => {
      const filled = Math.round((width * Math.min(v.bytes, this.total)) / this.total);
      const state = v.name === this.source ? 'pushed here'
        : v.complete ? `complete in ${this.completedAt.get(v.name)!.toFixed(1)} s`
        : v.fetching ? 'fetching' : 'waiting for gossip';
      return `    ${v.name}  ${'█'.repeat(filled)}${'░'.repeat(width - filled)}  ${mib(v.bytes).padStart(5)}/${mib(this.total)} MiB  ${v.layersHeld}/${this.layers} layers  ${state}`;
    });
    lines.push(`    ${seconds.toFixed(1)} s since the push`);
    // Move up over the previous frame and overwrite it line by line; a line must not wrap, or the count is off.
    const up = this.drawn ? `\x1b[${this.drawn}F` : '';
    const fit = (l: string) => (this.out.columns && l.length >= this.out.columns ? l.slice(0, this.out.columns - 1) : l);
    this.out.write(up + lines.map((l) => `\x1b[2K${fit(l)}\n`).join(''));
    this.drawn = lines.length;
  }

  private write(line: string): void {
    this.out.write(`${line}\n`);
  }
}

function stamp(seconds: number): string {
  return `    ${seconds.toFixed(1).padStart(5)} s`;
}
