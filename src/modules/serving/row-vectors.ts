import { VectorMemory } from '../../common/vector-memory';

/**
 * One served model's item vectors (the item tower's output) and score biases, by item-table row:
 * row-major, contiguous, in WebAssembly memory for the SIMD scoring kernel (vector-memory.ts).
 * Rows without a vector (not embedded yet, deleted, or added to the table after this object last
 * grew) read as absent. Updated in place as items are embedded after the swap; `generation`
 * counts those updates, so a cache of something built from these vectors can tell that it is out
 * of date.
 */
export class RowVectors {
  private capacity = 0;
  private readonly values: VectorMemory;
  private biases: Float32Array | undefined;
  private present = new Uint8Array(0);
  /** When each row's text vector was stored (ms): an update seen twice is applied once. */
  private storedAt = new Float64Array(0);
  private updates = 0;
  /** Sets that collect the rows set or cleared from their creation on (see `watch`). */
  private readonly watchers = new Set<Set<number>>();

  /** `memory`: a load's vectors, taken over as these rows' (see `moveToRows`), not copied. */
  constructor(
    readonly dimension: number,
    capacity: number,
    memory?: VectorMemory,
  ) {
    if (memory !== undefined && memory.dimension !== dimension) {
      throw new Error(`memory holds ${String(memory.dimension)} values a row, not ${dimension}`);
    }
    this.values = memory ?? new VectorMemory(dimension, 0);
    this.grow(Math.max(capacity, this.values.rows));
  }

  /** Rows 0 .. rows - 1 may hold vectors. */
  get rows(): number {
    return this.capacity;
  }

  /** `rows × dimension` values; a row without a vector holds zeros. */
  get matrix(): Float32Array<SharedArrayBuffer> {
    return this.values.matrix;
  }

  /** Bytes of WebAssembly memory the vectors take (not in `process.memoryUsage().arrayBuffers`). */
  get vectorBytes(): number {
    return this.values.bytes;
  }

  /** The item-only score term by row; undefined while every row's is 0 (most models). */
  get bias(): Float32Array | undefined {
    return this.biases;
  }

  get generation(): number {
    return this.updates;
  }

  has(row: number): boolean {
    return row < this.capacity && this.present[row] === 1;
  }

  /** The row's vector (a view, not a copy); only for rows that `has`. */
  vector(row: number): Float32Array {
    const offset = row * this.dimension;
    return this.values.matrix.subarray(offset, offset + this.dimension);
  }

  /** `out[r - from]` = the vector of row r · `query`, from <= r < to (at most SCORE_BLOCK). */
  dotRange(from: number, to: number, query: Float32Array, out: Float32Array): void {
    this.values.dotRange(from, to, query, out);
  }

  /** The model score, scale × (vector · user) + bias, of the first `count` rows listed. */
  scoreRows(
    rows: Int32Array,
    count: number,
    user: Float32Array,
    scale: number,
    out: Float32Array | Float64Array,
  ): void {
    this.values.dotRows(rows, count, user, out);
    const bias = this.biases;
    for (let i = 0; i < count; i++) {
      out[i] = scale * out[i] + (bias === undefined ? 0 : bias[rows[i]]);
    }
  }

  /** The model score of rows from..to (at most SCORE_BLOCK); skip the rows without a vector. */
  scoreRange(from: number, to: number, user: Float32Array, scale: number, out: Float32Array) {
    this.values.dotRange(from, to, user, out);
    const bias = this.biases;
    for (let r = from; r < to; r++) {
      out[r - from] = scale * out[r - from] + (bias === undefined ? 0 : bias[r]);
    }
  }

  /** When the row's vector was stored; NaN when it has none. */
  storedAtMs(row: number): number {
    return row < this.capacity && this.present[row] === 1 ? this.storedAt[row] : Number.NaN;
  }

  set(row: number, vector: ArrayLike<number>, bias: number, storedAtMs: number): void {
    if (vector.length !== this.dimension) {
      throw new Error(`vector has ${vector.length} values, the model ${this.dimension}`);
    }
    if (row >= this.capacity) this.grow(Math.max(row + 1, this.capacity * 2));
    this.values.matrix.set(vector, row * this.dimension);
    if (bias !== 0 || this.biases !== undefined) {
      this.biases ??= new Float32Array(this.capacity);
      this.biases[row] = bias;
    }
    this.present[row] = 1;
    this.storedAt[row] = storedAtMs;
    this.updates++;
    for (const watcher of this.watchers) watcher.add(row);
  }

  /** The row no longer has a vector (its item was deleted). */
  clear(row: number): void {
    if (row >= this.capacity || this.present[row] === 0) return;
    this.present[row] = 0;
    this.values.matrix.fill(0, row * this.dimension, (row + 1) * this.dimension);
    this.updates++;
    for (const watcher of this.watchers) watcher.add(row);
  }

  /**
   * Moves the vectors a load wrote in catalog order (item i's in row i) to their rows, in place:
   * item i's to row `rows[i]` (each row at most once), with `bias[i]`; rows no item moves to are
   * left without a vector. Each vector is copied at most once, as the copy to new rows would:
   * along each chain of moves from its end back, so that each goes to a row already vacated (a
   * chain starts at a row nothing moves to), then round the cycles left, one vector set aside.
   * Yields after every `step` vectors moved (1.5 GB move at a million items of 384-d).
   */
  *moveToRows(rows: Int32Array, bias: Float32Array | undefined, step: number): Generator<void> {
    const n = rows.length;
    const d = this.dimension;
    const matrix = this.values.matrix;
    const arriving = new Int32Array(this.capacity).fill(-1);
    for (let i = 0; i < n; i++) {
      if (rows[i] < 0 || rows[i] >= this.capacity || arriving[rows[i]] >= 0) {
        throw new Error(`item ${String(i)}'s row ${String(rows[i])} is out of range or taken`);
      }
      arriving[rows[i]] = i;
    }
    const moved = new Uint8Array(n);
    const path = new Int32Array(n);
    const aside = new Float32Array(d);
    let sinceTurn = 0;
    const follow = function* (start: number): Generator<void> {
      let length = 0;
      let at = start;
      do {
        path[length++] = at;
        moved[at] = 1;
        at = rows[at];
      } while (at !== start && at < n && moved[at] === 0);
      const cycle = at === start;
      const last = path[length - 1];
      if (cycle) aside.set(matrix.subarray(last * d, (last + 1) * d));
      for (let k = length - (cycle ? 2 : 1); k >= 0; k--) {
        const from = path[k];
        matrix.copyWithin(rows[from] * d, from * d, (from + 1) * d);
        if (++sinceTurn >= step) {
          sinceTurn = 0;
          yield;
        }
      }
      if (cycle) matrix.set(aside, start * d);
    };
    for (let i = 0; i < n; i++) {
      if (arriving[i] >= 0 || moved[i] === 1) continue;
      yield* follow(i);
      matrix.fill(0, i * d, (i + 1) * d);
    }
    for (let i = 0; i < n; i++) if (moved[i] === 0 && rows[i] !== i) yield* follow(i);
    const biased = bias?.some((value) => value !== 0) === true ? bias : undefined;
    if (biased !== undefined) this.biases ??= new Float32Array(this.capacity);
    for (let i = 0; i < n; i++) {
      this.present[rows[i]] = 1;
      if (biased !== undefined && this.biases !== undefined) this.biases[rows[i]] = biased[i];
    }
    this.updates++;
  }

  /**
   * A set that collects every row set or cleared from now on, until `unwatch`: what an index
   * built from a snapshot of these vectors has not seen.
   */
  watch(): Set<number> {
    const watcher = new Set<number>();
    this.watchers.add(watcher);
    return watcher;
  }

  unwatch(watcher: ReadonlySet<number>): void {
    this.watchers.delete(watcher as Set<number>);
  }

  /** Makes room for at least `rows` rows (the item table grew). */
  reserve(rows: number): void {
    if (rows > this.capacity) this.grow(rows);
  }

  private grow(capacity: number): void {
    // In place: an index build on another thread reads the vectors as they are (retrieval.ts).
    this.values.reserve(capacity);
    const present = new Uint8Array(capacity);
    present.set(this.present);
    const storedAt = new Float64Array(capacity);
    storedAt.set(this.storedAt);
    if (this.biases !== undefined) {
      const biases = new Float32Array(capacity);
      biases.set(this.biases);
      this.biases = biases;
    }
    this.present = present;
    this.storedAt = storedAt;
    this.capacity = capacity;
  }
}
