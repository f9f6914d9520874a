// V8 frees a dead Buffer's memory only when it next collects the young generation, and it starts a collection
// early for such memory only once about 32 MiB of it wait (a threshold of its own, which --max-semi-space-size
// does not move). A transfer that allocates a fresh buffer per chunk (grpc-js frames every message into a new
// one) thus keeps up to 32 MiB of garbage resident between collections. Collecting the young generation every
// few MiB moved bounds that float; it holds little that is alive, so each collection is short.

/** V8's `gc`, present when node runs with --expose-gc (meshd's #! line). */
export type Collect = (options: { type: 'minor' }) => void;

/** Counts bytes that passed through fresh buffers and collects the young generation every `everyBytes`. */
export class Scavenger {
  #since = 0;

  constructor(
    private readonly everyBytes: number,
    private readonly collect: Collect | null = (globalThis as { gc?: Collect }).gc ?? null,
  ) {}

  moved(bytes: number): void {
    if (!this.collect) return;
    this.#since += bytes;
    if (this.#since < this.everyBytes) return;
    this.#since = 0;
    this.collect({ type: 'minor' });
  }
}
