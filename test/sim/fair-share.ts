// Max-min fair rates (progressive filling) for flows over shared resources: every flow's rate rises
// together until a resource it uses is full or the flow reaches its own cap; those freeze and the rest
// keep rising. This is what many TCP flows sharing bottleneck links settle to, roughly, and unlike an
// equal split it hands a flow's unused share (a child caught up with its feeder) to the others.
// Weighted: a flow of rate r uses w·r of each of its resources (w = 1 for a link, CPU-s per byte for a CPU).

export interface FlowSet {
  count: number;
  /** The most each flow can take (bytes/s), e.g. what its feeder has that it lacks, per step. */
  cap: Float64Array;
  /** Resource indices of flow f at [f·perFlow, (f+1)·perFlow), -1 for none. */
  resources: Int32Array;
  weights: Float64Array;
  perFlow: number;
}

/** A binary min-heap of (key, resource, version) for the next resource to fill; stale entries are skipped. */
class Heap {
  readonly #keys: number[] = [];
  readonly #items: number[] = [];
  readonly #versions: number[] = [];

  get size(): number {
    return this.#keys.length;
  }

  push(key: number, item: number, version: number): void {
    let i = this.#keys.length;
    this.#keys.push(key), this.#items.push(item), this.#versions.push(version);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#keys[parent] <= key) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  peek(): { key: number; item: number; version: number } {
    return { key: this.#keys[0], item: this.#items[0], version: this.#versions[0] };
  }

  pop(): void {
    const last = this.#keys.length - 1;
    this.#swap(0, last);
    this.#keys.pop(), this.#items.pop(), this.#versions.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < last && this.#keys[l] < this.#keys[m]) m = l;
      if (r < last && this.#keys[r] < this.#keys[m]) m = r;
      if (m === i) return;
      this.#swap(i, m);
      i = m;
    }
  }

  #swap(a: number, b: number): void {
    [this.#keys[a], this.#keys[b]] = [this.#keys[b], this.#keys[a]];
    [this.#items[a], this.#items[b]] = [this.#items[b], this.#items[a]];
    [this.#versions[a], this.#versions[b]] = [this.#versions[b], this.#versions[a]];
  }
}

/** Max-min fair rates of `flows` under `capacity` per resource; written to `rate`. */
export function maxMinRates(capacity: Float64Array, flows: FlowSet, rate: Float64Array): void {
  const { count, cap, resources, weights, perFlow } = flows;
  const nRes = capacity.length;
  // Per resource: the weight of its flows still rising, and the load of those frozen.
  const rising = new Float64Array(nRes);
  const frozenLoad = new Float64Array(nRes);
  const version = new Int32Array(nRes);
  const users: number[][] = Array.from({ length: nRes }, () => []);
  for (let f = 0; f < count; f++) {
    for (let j = f * perFlow; j < (f + 1) * perFlow; j++) {
      const r = resources[j];
      if (r < 0) continue;
      rising[r] += weights[j];
      users[r].push(f);
    }
  }
  const frozen = new Uint8Array(count);
  const levelOf = (r: number) => (capacity[r] - frozenLoad[r]) / rising[r];
  const heap = new Heap();
  for (let r = 0; r < nRes; r++) if (rising[r] > 0) heap.push(levelOf(r), r, 0);
  const byCap = Array.from({ length: count }, (_, f) => f).sort((a, b) => cap[a] - cap[b]);
  let next = 0;
  let left = count;

  const freeze = (f: number, at: number) => {
    frozen[f] = 1;
    rate[f] = at;
    left--;
    for (let j = f * perFlow; j < (f + 1) * perFlow; j++) {
      const r = resources[j];
      if (r < 0) continue;
      frozenLoad[r] += weights[j] * at;
      rising[r] -= weights[j];
      version[r]++;
      if (rising[r] > 1e-12) heap.push(levelOf(r), r, version[r]);
    }
  };

  while (left > 0) {
    while (next < count && frozen[byCap[next]]) next++;
    while (heap.size > 0 && heap.peek().version !== version[heap.peek().item]) heap.pop();
    const capLevel = next < count ? cap[byCap[next]] : Infinity;
    const resLevel = heap.size > 0 ? heap.peek().key : Infinity;
    if (capLevel <= resLevel) {
      freeze(byCap[next], Math.max(0, capLevel));
    } else {
      const r = heap.peek().item;
      heap.pop();
      const at = Math.max(0, resLevel);
      for (const f of users[r]) if (!frozen[f]) freeze(f, at);
    }
  }
}
