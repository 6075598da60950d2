/**
 * Promises by key, the one in-process cache of model code: the seeded-model store's running builds, the imported
 * models' sessions, the sessions of encoder graphs with external data. Concurrent callers of one key share one
 * promise (so one build, one session); a promise that rejects is forgotten, so the next call tries again.
 * `keep: false` forgets a promise once it settles (a build in flight), `keep: true` (default) keeps its value.
 * A `stamp` (e.g. the content hash the value was made from) replaces an entry made under another stamp; the
 * replaced promise goes to `onReplace` (to release a session).
 */
export class KeyedCache<K, V> {
  private readonly entries = new Map<K, { stamp: string | undefined; value: Promise<V> }>();

  constructor(private readonly options: { keep?: boolean; onReplace?: (old: Promise<V>) => void } = {}) {}

  /** The promise under `key` (made under the same `stamp`), else `create()`'s, stored under `key`. */
  get(key: K, create: () => Promise<V>, stamp?: string): Promise<V> {
    const hit = this.entries.get(key);
    if (hit && hit.stamp === stamp) return hit.value;
    if (hit) {
      this.entries.delete(key);
      this.options.onReplace?.(hit.value);
    }
    let value: Promise<V>;
    try {
      value = create();
    } catch (e) {
      return Promise.reject(e);
    }
    const entry = { stamp, value };
    this.entries.set(key, entry);
    const forget = () => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    };
    value.then(this.options.keep === false ? forget : () => undefined, forget);
    return value;
  }

  /** Removes the entry of `key` and returns its promise (for the caller to release), if there was one. */
  delete(key: K): Promise<V> | undefined {
    const hit = this.entries.get(key);
    this.entries.delete(key);
    return hit?.value;
  }

  /** The stored keys and promises (a copy: deleting while iterating is fine). */
  list(): [K, Promise<V>][] {
    return [...this.entries].map(([k, e]) => [k, e.value]);
  }

  get size(): number {
    return this.entries.size;
  }
}
