// What the user sees while pushing: on a terminal one bar per layer (bytes and rate, cli-progress),
// otherwise one plain line per finished blob; at the end one summary line per host (or one JSON document).
import { MultiBar, type SingleBar } from 'cli-progress';
import type { FailureKind } from './errors.js';
import type { PlannedBlob } from './plan.js';
import type { BlobOutcome, PushListener, PushStats } from './push.js';

export interface HostResult {
  host: string;
  ok: boolean;
  /** The digest the tag now names on the host. */
  digest?: string;
  stats?: PushStats;
  seconds: number;
  error?: { kind: FailureKind; message: string };
}

export interface Output {
  host(name: string): PushListener;
  /** Ends the progress display and prints the per-host summary. */
  finish(image: string, results: HostResult[]): void;
  /** Ends the progress display where it stands (Ctrl-C): the terminal gets its cursor back. */
  interrupt(): void;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

function rate(bytes: number, ms: number): string {
  return ms < 1 ? '' : `${formatBytes((bytes / ms) * 1000)}/s`;
}

const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

export function summaryLine(image: string, r: HostResult): string {
  if (!r.ok || !r.stats) return `${r.host}: FAILED: ${r.error?.message ?? 'unknown error'}`;
  const { layers, bytesSent } = r.stats;
  const mounted = layers.mounted ? `, ${layers.mounted} mounted` : '';
  return `${r.host}: ${image} ${r.digest ? `(${short(r.digest)}) ` : ''}pushed: ${layers.sent} of ${layers.total} layers sent, ` +
    `${layers.skipped} already there${mounted}; ${formatBytes(bytesSent)} sent in ${r.seconds.toFixed(1)} s`;
}

const OUTCOME_WORDS: Record<BlobOutcome, string> = { sent: 'sent', exists: 'already there', mounted: 'mounted' };

/** Plain lines, for logs and pipes. */
class LineOutput implements Output {
  constructor(private readonly write: (line: string) => void) {}

  host(name: string): PushListener {
    const started = new Map<string, number>();
    return {
      note: (m) => this.write(`${name}: ${m}`),
      blobStart: (b) => started.set(b.descriptor.digest, Date.now()),
      blobBytes: () => {},
      blobDone: (b, outcome) => {
        const ms = Date.now() - (started.get(b.descriptor.digest) ?? Date.now());
        const speed = rate(b.descriptor.size, ms);
        const how = outcome === 'sent' ? `sent ${formatBytes(b.descriptor.size)} in ${(ms / 1000).toFixed(1)} s${speed ? ` (${speed})` : ''}` : OUTCOME_WORDS[outcome];
        this.write(`${name}: ${b.kind} ${short(b.descriptor.digest)}: ${how}`);
      },
    };
  }

  finish(image: string, results: HostResult[]): void {
    for (const r of results) this.write(summaryLine(image, r));
  }

  interrupt(): void {}
}

/** One bar per layer and host on a terminal. */
class BarOutput implements Output {
  readonly #bars: MultiBar;

  constructor(private readonly stream: NodeJS.WriteStream) {
    this.#bars = new MultiBar({
      stream,
      format: '{label} {bar} {info}',
      barsize: 20,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      autopadding: true,
      fps: 8,
    });
  }

  host(name: string): PushListener {
    const bars = new Map<string, { bar: SingleBar; start: number; done: number }>();
    const info = (b: PlannedBlob, done: number, start: number) =>
      `${formatBytes(done)}/${formatBytes(b.descriptor.size)} ${rate(done, Date.now() - start)}`;
    return {
      note: (m) => this.#bars.log(`${name}: ${m}\n`),
      blobStart: (b) => {
        if (b.kind !== 'layer') return;
        const bar = this.#bars.create(Math.max(1, b.descriptor.size), 0, { label: `${name} ${short(b.descriptor.digest)}`, info: 'checking' });
        bars.set(b.descriptor.digest, { bar, start: Date.now(), done: 0 });
      },
      blobBytes: (b, n) => {
        const entry = bars.get(b.descriptor.digest);
        if (!entry) return;
        entry.done += n;
        entry.bar.update(entry.done, { info: info(b, entry.done, entry.start) });
      },
      blobDone: (b, outcome) => {
        const entry = bars.get(b.descriptor.digest);
        if (!entry) return;
        const text = outcome === 'sent' ? `${formatBytes(entry.done)} sent ${rate(entry.done, Date.now() - entry.start)}` : OUTCOME_WORDS[outcome];
        entry.bar.update(Math.max(1, b.descriptor.size), { info: text });
      },
    };
  }

  finish(image: string, results: HostResult[]): void {
    this.#bars.stop();
    for (const r of results) this.stream.write(`${summaryLine(image, r)}\n`);
  }

  interrupt(): void {
    this.#bars.stop();
  }
}

class QuietOutput implements Output {
  host(): PushListener {
    return { note: () => {}, blobStart: () => {}, blobBytes: () => {}, blobDone: () => {} };
  }

  finish(): void {}
  interrupt(): void {}
}

/** Bars when `stream` is a terminal, lines otherwise; nothing when quiet. */
export function createOutput(opts: { quiet?: boolean; stream: NodeJS.WriteStream }): Output {
  if (opts.quiet) return new QuietOutput();
  if (opts.stream.isTTY) return new BarOutput(opts.stream);
  return new LineOutput((line) => opts.stream.write(`${line}\n`));
}
