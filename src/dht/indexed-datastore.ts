// An in-memory libp2p datastore whose prefix queries cost what they return.
//
// libp2p's default MemoryDatastore answers every prefix query by scanning (and re-parsing) every key it holds.
// kad-dht reads provider records with such a query (`/dht/provider/<multihash>`) on every local lookup and
// every GET_PROVIDERS it answers, so with tens of thousands of records each lookup cost milliseconds.
// Here keys are indexed by path: a prefix query walks only the subtree under the prefix.
//
// Semantics: a prefix matches whole path segments (`/a/b` matches `/a/b` and `/a/b/...`, not `/a/bc`).
// Every prefix libp2p 3, kad-dht 16 and the peer store query with is segment-aligned (`/dht/provider/<cid>`,
// `/dht/provider`, `/peers/`); base-class filters, orders, offsets and limits still apply on top.
import { BaseDatastore } from 'datastore-core/base';
import { Key } from 'interface-datastore';
import type { KeyQuery, Pair, Query } from 'interface-datastore';
import { NotFoundError, type AbortOptions } from '@libp2p/interface';

export class PathIndexedDatastore extends BaseDatastore {
  private readonly values = new Map<string, Uint8Array>();
  /** Path -> its direct children (full paths) that hold a value or have descendants that do. */
  private readonly children = new Map<string, Set<string>>();

  put(key: Key, val: Uint8Array, options?: AbortOptions): Key {
    options?.signal?.throwIfAborted();
    const path = key.toString();
    if (!this.values.has(path)) this.link(path);
    this.values.set(path, val);
    return key;
  }

  get(key: Key, options?: AbortOptions): Uint8Array {
    options?.signal?.throwIfAborted();
    const value = this.values.get(key.toString());
    if (value === undefined) throw new NotFoundError(`no value for ${key.toString()}`);
    return value;
  }

  has(key: Key, options?: AbortOptions): boolean {
    options?.signal?.throwIfAborted();
    return this.values.has(key.toString());
  }

  delete(key: Key, options?: AbortOptions): void {
    options?.signal?.throwIfAborted();
    const path = key.toString();
    if (this.values.delete(path)) this.unlink(path);
  }

  *_all(q: Query, options?: AbortOptions): Generator<Pair> {
    for (const path of this.paths(q.prefix)) {
      options?.signal?.throwIfAborted();
      yield { key: new Key(path, false), value: this.values.get(path)! };
    }
  }

  *_allKeys(q: KeyQuery, options?: AbortOptions): Generator<Key> {
    for (const path of this.paths(q.prefix)) {
      options?.signal?.throwIfAborted();
      yield new Key(path, false);
    }
  }

  /** Paths holding a value at or under `prefix` (all paths without one). */
  private *paths(prefix: string | undefined): Generator<string> {
    const root = prefix === undefined ? '' : prefix.replace(/\/+$/, '');
    if (this.values.has(root)) yield root;
    const stack = [root];
    while (stack.length > 0) {
      const kids = this.children.get(stack.pop()!);
      if (kids === undefined) continue;
      // Copy: callers may delete while iterating (kad-dht's cleanup does).
      for (const kid of [...kids]) {
        if (this.values.has(kid)) yield kid;
        stack.push(kid);
      }
    }
  }

  private link(path: string): void {
    for (let child = path, parent = parentOf(child); parent !== undefined; child = parent, parent = parentOf(child)) {
      let kids = this.children.get(parent);
      if (kids === undefined) this.children.set(parent, (kids = new Set()));
      else if (kids.has(child)) return; // the rest of the chain is linked already
      kids.add(child);
    }
  }

  private unlink(path: string): void {
    for (let child = path, parent = parentOf(child); parent !== undefined; child = parent, parent = parentOf(child)) {
      if (this.values.has(child) || (this.children.get(child)?.size ?? 0) > 0) return; // still needed
      this.children.delete(child);
      const kids = this.children.get(parent);
      kids?.delete(child);
    }
  }
}

/** `/a/b` -> `/a`, `/a` -> `` (the root), `` -> none. */
function parentOf(path: string): string | undefined {
  if (path === '') return undefined;
  return path.slice(0, Math.max(0, path.lastIndexOf('/')));
}
