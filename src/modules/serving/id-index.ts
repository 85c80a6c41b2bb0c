/** FNV-1a over the UTF-16 code units. */
function hashOf(id: string): number {
  let hash = 0x811c9dc5 | 0;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash;
}

/**
 * The row of each id of a list that only grows (rows are never reused). An open-addressing table
 * over one typed array, at most half full, each slot holding a row and its id's hash side by side:
 * a lookup reads one cache line of the table and confirms with one string compare. For the fresh
 * candidate strings of a request this is about 2.5x faster than a 50,000-entry Map, whose entry
 * and key reads miss the cache.
 */
export class IdIndex {
  private mask = 0;
  /** Slot i: `slots[2i]` the row (-1: empty), `slots[2i + 1]` the hash of its id. */
  private slots = new Int32Array(0);
  private readonly ids: string[] = [];
  /** The hashes `rowsOf` is confirming; reused (it runs to its end before any other call). */
  private hashes = new Int32Array(0);

  /** Indexes `ids` in order; a repeated id keeps its last row, like a Map built from the list. */
  constructor(ids: readonly string[] = []) {
    this.resize(ids.length);
    for (const id of ids) this.add(id);
  }

  get size(): number {
    return this.ids.length;
  }

  get(id: string): number | undefined {
    const row = this.probe(id, hashOf(id));
    return row === -1 ? undefined : row;
  }

  /**
   * The rows of `count` ids (`idAt(i)`) into `out`, -1 for an absent one. Two passes: the first
   * hashes every id and reads its first slot, so that those reads miss the cache together rather
   * than one after another; the second confirms, mostly from cache (for a request's 100
   * candidates on cold caches about a third less time than 100 `get`s).
   */
  rowsOf(count: number, idAt: (i: number) => string, out: Int32Array): void {
    if (this.hashes.length < count) this.hashes = new Int32Array(count);
    const { hashes } = this;
    for (let i = 0; i < count; i++) {
      const hash = hashOf(idAt(i));
      hashes[i] = hash;
      out[i] = this.slots[2 * (hash & this.mask)];
    }
    for (let i = 0; i < count; i++) {
      // An empty first slot: absent, nothing to confirm.
      if (out[i] !== -1) out[i] = this.probe(idAt(i), hashes[i]);
    }
  }

  /** The row of `id` (whose hash is `hash`), or -1. */
  private probe(id: string, hash: number): number {
    for (let slot = hash & this.mask; ; slot = (slot + 1) & this.mask) {
      const row = this.slots[2 * slot];
      if (row === -1) return -1;
      if (this.slots[2 * slot + 1] === hash && this.ids[row] === id) return row;
    }
  }

  /** The id of `row` (rows are 0 .. size - 1). */
  id(row: number): string {
    return this.ids[row];
  }

  /** Gives `id` the next row; an id already present moves to it. Returns the row. */
  add(id: string): number {
    const row = this.ids.length;
    this.ids.push(id);
    if (row * 2 >= this.mask + 1) this.resize(row + 1);
    else this.place(id, row);
    return row;
  }

  private place(id: string, row: number): void {
    const hash = hashOf(id);
    let slot = hash & this.mask;
    while (this.slots[2 * slot] !== -1 && this.ids[this.slots[2 * slot]] !== id) {
      slot = (slot + 1) & this.mask;
    }
    this.slots[2 * slot] = row;
    this.slots[2 * slot + 1] = hash;
  }

  /** Rebuilds the table for at least `rows` rows, at most half full. */
  private resize(rows: number): void {
    let capacity = 2;
    while (capacity < rows * 2) capacity *= 2;
    this.mask = capacity - 1;
    this.slots = new Int32Array(capacity * 2).fill(-1);
    this.ids.forEach((id, row) => {
      this.place(id, row);
    });
  }
}
