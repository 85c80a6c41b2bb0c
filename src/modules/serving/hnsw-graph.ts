import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { VectorMemory } from '../../common/vector-memory';
import { cosine } from '../embedding/vector-codec';

/**
 * What runs on an index's thread besides hnswlib itself (hnsw.thread.ts): another version's
 * graph given this version's vectors, and an index's recall sampled against the exact scan.
 */

/** The vectors an index covers: rows of a shared matrix. */
export interface GraphSource {
  /** Row-major vectors, read in place (shared memory is not copied to a thread). */
  readonly matrix: Float32Array;
  readonly dimension: number;
  readonly rows: Int32Array;
  /** Per row of `rows`, one more value appended to its vector; absent: none. */
  readonly extra: Float32Array | undefined;
}

/** hnswlib's fixed seed: the same vectors in the same order build the same graph. */
export const HNSW_SEED = 100;

/**
 * How an index's points are laid out, and so what its graph compares (stored with the index).
 * `inner-product`: the vector (and extra value), compared by inner product. `norm-augmented-l2`
 * (Bachrach et al., 2014): one more value, √(Φ² − ‖x‖²) with Φ the longest point's norm, so that
 * every point is Φ long and a query `[q, 0]`'s euclidean distance orders the points as its inner
 * product does. Which graph serves better depends on the vectors: an inner-product graph can
 * leave short vectors with no link leading to them (a trained tower's at 60,000 items: 0.80 of
 * users' top 20 found, whatever the search list; norm-augmented 0.95), and elsewhere finds more
 * (the same model's at 300,000 items: 0.965 against 0.926), at half the build time.
 */
export type PointFormat = 'inner-product' | 'norm-augmented-l2';

/** The formats an index may be stored in (a stored index names its own). */
export const POINT_FORMATS: readonly PointFormat[] = ['inner-product', 'norm-augmented-l2'];

/** hnswlib's space for the format's points. */
export function spaceOf(format: PointFormat): 'ip' | 'l2' {
  switch (format) {
    case 'inner-product':
      return 'ip';
    case 'norm-augmented-l2':
      return 'l2';
  }
}

/** Values per point: the vector, the extra value if any, the norm slot if augmented. */
export function pointValues(
  source: Pick<GraphSource, 'dimension' | 'extra'>,
  format: PointFormat,
): number {
  const slot = format === 'norm-augmented-l2' ? 1 : 0;
  return source.dimension + (source.extra === undefined ? 0 : 1) + slot;
}

/** A query as the format's points are compared: the norm slot's 0 appended when augmented. */
export function queryPoint(query: number[], format: PointFormat): number[] {
  return format === 'norm-augmented-l2' ? [...query, 0] : query;
}

/**
 * Writes the point of the source's position `i` into `point` from `at`, in `format` (for an
 * augmented one, Φ is the longest of the source's points).
 */
export function pointWriter(
  source: GraphSource,
  format: PointFormat,
): (point: Record<number, number>, at: number, i: number) => void {
  const { matrix, dimension, rows, extra } = source;
  const augmented = format === 'norm-augmented-l2';
  const slot = pointValues(source, format) - 1;
  const squaredNorm = (i: number) => {
    const offset = rows[i] * dimension;
    let sum = extra === undefined ? 0 : extra[i] * extra[i];
    for (let j = 0; j < dimension; j++) sum += matrix[offset + j] * matrix[offset + j];
    return sum;
  };
  let largest = 0;
  if (augmented) for (let i = 0; i < rows.length; i++) largest = Math.max(largest, squaredNorm(i));
  return (point, at, i) => {
    const offset = rows[i] * dimension;
    for (let j = 0; j < dimension; j++) point[at + j] = matrix[offset + j];
    if (extra !== undefined) point[at + dimension] = extra[i];
    // Rounding may put the longest point a hair over Φ.
    if (augmented) point[at + slot] = Math.sqrt(Math.max(0, largest - squaredNorm(i)));
  };
}

/** How an index's recall is sampled: as `recommend` asks it (retrieval.ts), on `queries` users. */
export interface RecallCheck {
  readonly queries: number;
  /** Rows asked of the index per query, re-scored exactly. */
  readonly candidates: number;
  /** The search list (raised to `candidates` when fewer). */
  readonly ef: number;
  /** The rows compared with the exact scan's (recall@k). */
  readonly k: number;
}

/** Each row's position in `rows` (-1: not there), by row. */
export function positionsOf(rows: Int32Array): Int32Array {
  let highest = -1;
  for (const row of rows) highest = Math.max(highest, row);
  const position = new Int32Array(highest + 1).fill(-1);
  rows.forEach((row, i) => {
    position[row] = i;
  });
  return position;
}

/**
 * hnswlib's saved index (hnswalg.h, saveIndex): a header of 96 bytes (six size_t, an int and a
 * uint32, three size_t, a double and a size_t), then each element's level-0 record, then the
 * upper levels' links. A record holds its links (the first 2 bytes their count, the third the
 * deleted mark), its vector at `offsetData` and its label (size_t) at `labelOffset`.
 */
const HEADER_BYTES = 96;
const DELETE_MARK = 0x01;
/** Level-0 records rewritten per read and write. */
const CHUNK_BYTES = 64 << 20;

interface SavedLayout {
  readonly offsetLevel0: number;
  readonly count: number;
  readonly recordBytes: number;
  readonly labelOffset: number;
  readonly offsetData: number;
}

function savedLayout(header: Buffer): SavedLayout {
  const size = (at: number) => Number(header.readBigUInt64LE(at));
  return {
    offsetLevel0: size(0),
    count: size(16),
    recordBytes: size(24),
    labelOffset: size(32),
    offsetData: size(40),
  };
}

/**
 * Gives the points of the index saved in `file` (another version's, written by any replica) the
 * source's vectors, in place: label `l` takes row `labelRows[l]`'s point when the source indexes
 * that row (in `format`, an augmented point's slot under the source's own Φ). Points whose row
 * the source lacks are marked deleted (they still route searches, as any deleted point in
 * hnswlib); a deleted point whose row the source has is taken back. The graph's links stay as
 * they were built: a version fine-tuned from another moves its items little. Returns, per row of
 * `rows`, whether a point now holds its vector, and the mean angle in degrees between the points'
 * vectors before and after (how far the items moved).
 */
export function adoptGraph(
  file: string,
  format: PointFormat,
  source: GraphSource,
  labelRows: Int32Array,
): { held: Uint8Array; drift: number } {
  const { matrix, dimension, rows } = source;
  const values = pointValues(source, format);
  const writePoint = pointWriter(source, format);
  const position = positionsOf(rows);
  const held = new Uint8Array(rows.length);
  let angles = 0;
  let moved = 0;
  const fd = openSync(file, 'r+');
  try {
    const header = Buffer.alloc(HEADER_BYTES);
    readSync(fd, header, 0, HEADER_BYTES, 0);
    const layout = savedLayout(header);
    const { count, recordBytes, labelOffset, offsetData, offsetLevel0 } = layout;
    if (labelOffset - offsetData !== values * 4 || recordBytes % 4 !== 0 || offsetData % 4 !== 0) {
      throw new Error(
        `the saved index holds points of ${(labelOffset - offsetData) / 4} values, the source ${values}`,
      );
    }
    const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / recordBytes));
    // Its own ArrayBuffer: the vectors are written through a Float32Array view (4-byte aligned).
    const chunk = Buffer.from(new ArrayBuffer(perChunk * recordBytes));
    const floats = new Float32Array(chunk.buffer);
    for (let first = 0; first < count; first += perChunk) {
      const records = Math.min(perChunk, count - first);
      const at = HEADER_BYTES + first * recordBytes;
      const bytes = records * recordBytes;
      if (readSync(fd, chunk, 0, bytes, at) !== bytes) throw new Error(`${file} ends early`);
      for (let r = 0; r < records; r++) {
        const record = r * recordBytes;
        const label = Number(chunk.readBigUInt64LE(record + labelOffset));
        const row = label < labelRows.length ? labelRows[label] : -1;
        const i = row >= 0 && row < position.length ? position[row] : -1;
        const mark = record + offsetLevel0 + 2;
        if (i < 0 || held[i] === 1) {
          chunk[mark] |= DELETE_MARK;
          continue;
        }
        chunk[mark] &= ~DELETE_MARK;
        const into = (record + offsetData) / 4;
        const vector = matrix.subarray(row * dimension, (row + 1) * dimension);
        angles += angleBetween(floats.subarray(into, into + dimension), vector);
        moved++;
        writePoint(floats, into, i);
        held[i] = 1;
      }
      writeSync(fd, chunk, 0, bytes, at);
    }
  } finally {
    closeSync(fd);
  }
  return { held, drift: moved === 0 ? 0 : angles / moved };
}

/** The angle between two vectors, in degrees (0 when either is zero). */
function angleBetween(a: Float32Array, b: Float32Array): number {
  const cos = cosine(a, b);
  if (Number.isNaN(cos)) return 0;
  return (Math.acos(Math.max(-1, Math.min(1, cos))) * 180) / Math.PI;
}

/** The recall sample's seed: the same index samples the same users. */
const SAMPLE_SEED = 0x5eed;

/**
 * The share of the exact scan's top k (over the rows `held` marks) that the index's `search`
 * finds once its `candidates` are re-scored exactly, as `recommend` asks (retrieval.ts), over
 * `queries` sampled users: each the vector of a random item, as a user of one click (with 1 in
 * the bias slot, as the query of an index with biases carries). Users pooled from random items
 * all over the catalog sit near its mean, where any index of inner products does worst (0.78
 * at 300,000 items with candidates that gave real users' histories 0.96), and would tell ops
 * little. Undefined when `stopped` says so.
 */
export function sampledRecall(
  search: (query: number[], count: number) => readonly number[],
  source: GraphSource,
  held: Uint8Array,
  check: RecallCheck,
  stopped: () => boolean,
): number | undefined {
  const { matrix, dimension, rows, extra } = source;
  const values = dimension + (extra === undefined ? 0 : 1);
  // Positions in `rows` (not rows): the extra values are by position.
  const eligible = Int32Array.from(held.keys()).filter((i) => held[i] === 1);
  if (eligible.length === 0) return 1;
  const position = positionsOf(rows);
  let state = SAMPLE_SEED;
  const random = () => {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    return state / 0x1_0000_0000;
  };
  const queries = Array.from({ length: check.queries }, () => {
    const query = new Float32Array(values);
    const i = eligible[Math.floor(random() * eligible.length)];
    query.set(matrix.subarray(rows[i] * dimension, (rows[i] + 1) * dimension));
    if (extra !== undefined) query[dimension] = 1;
    return query;
  });
  const k = Math.min(check.k, eligible.length);
  const scan = new ExactScan(source);
  const truths = queries.map(() => new TopPositions(k));
  if (!scan.offer(eligible, queries, truths, stopped)) return undefined;
  let found = 0;
  queries.forEach((query, q) => {
    const candidates = Int32Array.from(search(Array.from(query), check.candidates), (row) =>
      row < position.length ? position[row] : -1,
    ).filter((i) => i >= 0);
    const truth = new Set(truths[q].positions);
    const top = new TopPositions(k);
    scan.offer(candidates, [query], [top], () => false);
    for (const i of top.positions) if (truth.has(i)) found++;
  });
  return found / (queries.length * k);
}

/** The k positions of highest score, best first. */
class TopPositions {
  readonly positions: number[] = [];
  private readonly scores: number[] = [];

  constructor(private readonly k: number) {}

  /** The score a position must beat to enter (-Infinity while the list is not full). */
  get floor(): number {
    return this.positions.length < this.k ? -Infinity : this.scores[this.k - 1];
  }

  offer(position: number, score: number): void {
    if (score <= this.floor) return;
    let at = this.positions.length === this.k ? this.k - 1 : this.positions.length;
    while (at > 0 && this.scores[at - 1] < score) at--;
    this.positions.splice(at, 0, position);
    this.scores.splice(at, 0, score);
    if (this.positions.length > this.k) {
      this.positions.pop();
      this.scores.pop();
    }
  }
}

/**
 * Rows copied into the kernel's memory at a time (and scanned between two looks at `stopped`):
 * 384 KB of 384 floats, in cache for every query.
 */
const SCAN_BLOCK = 256;

/**
 * Exact scores of a source's rows against many queries through the SIMD kernel: a block of rows
 * is copied into the kernel's memory and scored for every query while it is in cache, so each
 * row is read from the matrix once, and summed in float32 as `recommend`'s own scans are.
 * `sampledRecall` of 64 queries over 100,000 random rows of 384 and a bias took 0.39–0.65 s so,
 * against 3.8–4.1 s with JavaScript's loop summing four lanes.
 */
class ExactScan {
  private readonly block: VectorMemory;
  private readonly scores = new Float32Array(SCAN_BLOCK);

  constructor(private readonly source: GraphSource) {
    this.block = new VectorMemory(source.dimension, SCAN_BLOCK, { growable: false });
  }

  /**
   * Offers each of `positions` to each query's top with its exact score. False when `stopped`
   * said so before the end (the tops are then partial).
   */
  offer(
    positions: Int32Array,
    queries: readonly Float32Array[],
    tops: readonly TopPositions[],
    stopped: () => boolean,
  ): boolean {
    const { matrix, dimension, rows, extra } = this.source;
    const { block, scores } = this;
    const heads = queries.map((query) => query.subarray(0, dimension));
    for (let start = 0; start < positions.length; start += SCAN_BLOCK) {
      if (stopped()) return false;
      const count = Math.min(SCAN_BLOCK, positions.length - start);
      const copy = block.matrix;
      for (let p = 0; p < count; p++) {
        const offset = rows[positions[start + p]] * dimension;
        copy.set(matrix.subarray(offset, offset + dimension), p * dimension);
      }
      for (let q = 0; q < queries.length; q++) {
        block.dotRange(0, count, heads[q], scores);
        const bias = extra === undefined ? 0 : queries[q][dimension];
        for (let p = 0; p < count; p++) {
          const i = positions[start + p];
          tops[q].offer(i, extra === undefined ? scores[p] : scores[p] + extra[i] * bias);
        }
      }
    }
    return true;
  }
}
