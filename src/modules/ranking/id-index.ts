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
 * list). An open-addressing table over one typed array, at most half full, each slot holding a row
 * and its id's hash side by side: a lookup reads one cache line of the table and confirms with one
 * string compare. For the fresh candidate strings of a request this is about 2.5x faster than a
 * 50,000-entry Map, whose entry and key reads miss the cache.
 */
export class IdIndex {
  private readonly mask: number;
  /** Slot i: `slots[2i]` the row (-1: empty), `slots[2i + 1]` the hash of its id. */
  private readonly slots: Int32Array;

  constructor(private readonly ids: readonly string[]) {
    let capacity = 2;
    while (capacity < ids.length * 2) capacity *= 2;
    this.mask = capacity - 1;
    this.slots = new Int32Array(capacity * 2).fill(-1);
    ids.forEach((id, row) => {
      const hash = hashOf(id);
      let slot = hash & this.mask;
      while (this.slots[2 * slot] !== -1 && ids[this.slots[2 * slot]] !== id) {
        slot = (slot + 1) & this.mask;
      }
      this.slots[2 * slot] = row;
      this.slots[2 * slot + 1] = hash;
    });
  }

  get(id: string): number | undefined {
    const hash = hashOf(id);
    for (let slot = hash & this.mask; ; slot = (slot + 1) & this.mask) {
      const row = this.slots[2 * slot];
      if (row === -1) return undefined;
      if (this.slots[2 * slot + 1] === hash && this.ids[row] === id) return row;
    }
  }
}
