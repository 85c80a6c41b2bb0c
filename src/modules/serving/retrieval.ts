import { DomainError } from '../../common/errors';
import type { RowVectors } from './row-vectors';
import { bestFirst, topKOf } from './top-k';

/**
 * Approximate nearest neighbours by inner product, over item-table rows. Built once per served
 * version (off the request path), then only searched, off the serving thread; the one
 * implementation is HNSW (hnsw-index.ts), tests may build their own.
 */
export interface VectorIndex {
  readonly dimension: number;
  /** Vectors indexed. */
  readonly size: number;
  /** About how many bytes the index holds (vectors and graph). */
  readonly bytes: number;
  /**
   * Up to `count` rows with about the largest inner product with `query`, best first; an
   * aborted `signal` withdraws a search not yet started.
   */
  search(query: Float32Array, count: number, signal?: AbortSignal): Promise<Int32Array>;
  /** Frees the index once the searches already taken are answered. */
  close(): void;
  /**
   * Opened from a written index: the source rows it holds no current vector of (changed since
   * it was written), to be scanned exactly beside its candidates. Undefined for a built index.
   */
  readonly stale?: Int32Array;
  /**
   * recall@20 of `recommend`'s candidates against the exact scan on sampled users, for an index
   * built or adopted here (hnsw-graph.ts); undefined for one opened from the store.
   */
  readonly recall?: number;
  /** For an adopted index: the mean angle (degrees) its items moved from the graph's vectors. */
  readonly drift?: number;
  /** Writes the index to `file`, for a VectorIndexOpener; absent: this index cannot be kept. */
  write?(file: string): Promise<void>;
  /** How the written index's points are laid out: its opener is given this back. */
  readonly pointFormat?: string;
}

/** What an index is built of: some rows of a matrix that the build reads in place. */
export interface IndexSource {
  /** Row-major, `dimension` values a row; shared, as another thread reads it. */
  readonly matrix: Float32Array<SharedArrayBuffer>;
  readonly dimension: number;
  /** The rows to index; the index answers with these numbers. */
  readonly rows: Int32Array;
  /** Per row of `rows`, one more value appended to its vector; undefined: none. */
  readonly extra: Float32Array | undefined;
}

/** The VectorIndexBuilder serving builds its ANN indexes with (HNSW; tests slow it down). */
export const VECTOR_INDEX_BUILDER = Symbol('VECTOR_INDEX_BUILDER');

/**
 * Builds an index of `source` (off the serving thread); `signal` abandons the build; `progress`
 * hears how many rows are in so far, now and then.
 */
export type VectorIndexBuilder = (
  source: IndexSource,
  signal: AbortSignal,
  progress?: (indexed: number) => void,
) => Promise<VectorIndex>;

/** The VectorIndexOpener serving opens stored indexes with (HNSW). */
export const VECTOR_INDEX_OPENER = Symbol('VECTOR_INDEX_OPENER');

/**
 * Opens the index written to `file` (by any replica; its points laid out in `pointFormat`) over
 * `source`: its label `l` is row `labelRows[l]` (-1: an item this replica does not have). Points
 * whose vector is not the source's are left out and their rows come back as `stale`. `adopt`:
 * the index is another version's; its graph is kept and its points take the source's vectors
 * (`recall` says how well the graph still leads).
 */
export type VectorIndexOpener = (
  file: string,
  pointFormat: string,
  labelRows: Int32Array,
  source: IndexSource,
  signal: AbortSignal,
  adopt?: boolean,
) => Promise<VectorIndex>;

export interface RetrievalSettings {
  /** Below this many item vectors the exact scan serves (it is fast enough, and exact). */
  readonly annMinItems: number;
  /** Rows asked of the index per request (at least the count wanted), re-scored exactly. */
  readonly annCandidates: number;
  /** Items set or deleted since the build beyond which the index is rebuilt. */
  readonly annMaxDelta: number;
}

/**
 * Which path answered: `exact` (small catalog, or no index yet), `ann` (index candidates and the
 * rows changed since its build, re-scored exactly), `ann_fallback` (the index's candidates held
 * too few acceptable items, e.g. a narrow category filter: the exact scan answered).
 */
export type RetrievalPath = 'exact' | 'ann' | 'ann_fallback';

export interface IndexBuilt {
  readonly rows: number;
  readonly buildMs: number;
  readonly bytes: number;
  /**
   * For an index opened from the store or adopted from another version's graph: its rows changed
   * since it was written.
   */
  readonly stale: number | undefined;
  /** Made from another version's stored graph (stored-index.service.ts), not built. */
  readonly adopted: boolean;
  /** How its points are laid out (hnsw-graph.ts); undefined: the index does not say. */
  readonly pointFormat: string | undefined;
}

/** What a retrieval reports: each answer's path, each finished index. */
export interface RetrievalObserver {
  answered(path: RetrievalPath): void;
  /** A build in progress has `indexed` of its `rows` in. */
  progress(indexed: number, rows: number): void;
  built(built: IndexBuilt): void;
  /** A build failed, or a built index stopped answering: the exact scan answers. */
  failed(error: unknown): void;
}

/** An index and the rows changed since its build started (re-scored exactly per request). */
interface BuiltIndex {
  readonly index: VectorIndex;
  readonly changed: ReadonlySet<number>;
  /** The index vectors carry `bias / scale` as one more value (the query then carries 1). */
  readonly withBias: boolean;
}

/**
 * The nearest items to a user vector for one served version: the exact scan over every row for
 * small catalogs; above `annMinItems` an ANN index of the version's vectors, built in the
 * background (the exact scan serves until it is ready), whose candidates are re-scored exactly.
 * Vectors set or deleted after the build started (new and re-embedded items, deletions) are
 * collected and scanned exactly alongside the index's candidates; past `annMaxDelta` of them an
 * index is rebuilt in the background and replaces the old one when done.
 */
export class Retrieval {
  private built: BuiltIndex | undefined;
  private building: Promise<void> | undefined;
  /** Abandons the build in progress (the version is no longer served). */
  private readonly closing = new AbortController();

  constructor(
    private readonly vectors: RowVectors,
    /** The model's scale: score = scale × (user · item) + bias. */
    private readonly scale: number,
    private readonly settings: RetrievalSettings,
    private readonly buildIndex: VectorIndexBuilder,
    private readonly observer: RetrievalObserver,
  ) {}

  /** Whether an index serves (false: the exact scan). */
  get indexed(): boolean {
    return this.built !== undefined;
  }

  /** What the serving index holds (0 without one). */
  get bytes(): number {
    return this.built?.index.bytes ?? 0;
  }

  /**
   * Starts a build when one is due: none yet and enough vectors, or too many changes since the
   * last. Returns the build in progress, if any (tests and benches wait for it).
   */
  maintain(): Promise<void> | undefined {
    if (this.building !== undefined || this.closing.signal.aborted || !this.annUsable()) {
      return this.building;
    }
    const due =
      this.built === undefined
        ? this.presentRows() >= this.settings.annMinItems
        : this.built.changed.size > this.settings.annMaxDelta;
    if (!due) return undefined;
    this.building = this.build()
      .catch((error: unknown) => {
        this.observer.failed(error);
      })
      .finally(() => {
        this.building = undefined;
      });
    return this.building;
  }

  /**
   * Stops a build in progress and drops the index (the version is no longer served). Settles
   * once the build's thread has ended (it stops between two points; ms).
   */
  close(): Promise<void> {
    this.closing.abort();
    if (this.built !== undefined) {
      this.vectors.unwatch(this.built.changed);
      this.built.index.close();
    }
    this.built = undefined;
    return this.building ?? Promise.resolve();
  }

  /**
   * Up to `count` rows with the highest model score for `user` (scale × dot + bias) among rows
   * below `rowLimit` that have a vector and that `accept` lets through, best first. An index
   * that fails (its thread ended) leaves the answer to the exact scan; `signal` withdraws a
   * search not yet started.
   */
  async nearest(
    user: Float32Array,
    count: number,
    accept: (row: number) => boolean,
    rowLimit: number,
    signal?: AbortSignal,
  ): Promise<Int32Array> {
    const { vectors, scale } = this;
    const built = this.built;
    if (built !== undefined && count > 0) {
      const found = await this.annNearest(built, user, count, accept, signal);
      if (found !== undefined) {
        this.observer.answered('ann');
        return found;
      }
    }
    this.observer.answered(built === undefined ? 'exact' : 'ann_fallback');
    return topKOf(
      Math.min(vectors.rows, rowLimit),
      count,
      (from, to, out) => {
        vectors.scoreRange(from, to, user, scale, out);
      },
      (row) => !vectors.has(row) || !accept(row),
    ).rows;
  }

  /**
   * The index's candidates and the changed rows, re-scored; undefined: too few accepted, or
   * the index failed.
   */
  private async annNearest(
    built: BuiltIndex,
    user: Float32Array,
    count: number,
    accept: (row: number) => boolean,
    signal: AbortSignal | undefined,
  ): Promise<Int32Array | undefined> {
    const { vectors } = this;
    const wanted = Math.max(count, this.settings.annCandidates);
    let found: Int32Array;
    try {
      found = await built.index.search(annQuery(user, built.withBias), wanted, signal);
    } catch (error) {
      if (error instanceof DomainError || signal?.aborted === true) throw error;
      this.dropFailed(built, error);
      return undefined;
    }
    const rows = new Int32Array(found.length + built.changed.size);
    let n = 0;
    const consider = (row: number) => {
      if (vectors.has(row) && accept(row)) rows[n++] = row;
    };
    for (const row of found) if (!built.changed.has(row)) consider(row);
    for (const row of built.changed) consider(row);
    // The index had more to give than it was asked for, and too few of these passed the filter.
    if (n < count && found.length === wanted) return undefined;
    const scores = new Float32Array(n);
    vectors.scoreRows(rows, n, user, this.scale, scores);
    const order = bestFirst(scores, rows.subarray(0, n));
    const best = new Int32Array(Math.min(count, n));
    for (let i = 0; i < best.length; i++) best[i] = rows[order[i]];
    return best;
  }

  /**
   * A failed index (its thread ended) is dropped: the exact scan answers until the next
   * `maintain` builds another.
   */
  private dropFailed(built: BuiltIndex, error: unknown): void {
    if (this.built !== built) return;
    this.built = undefined;
    this.vectors.unwatch(built.changed);
    built.index.close();
    this.observer.failed(error);
  }

  /** The index only ranks by the model's order when the scale is positive (as trained). */
  private annUsable(): boolean {
    return this.scale > 0;
  }

  private presentRows(): number {
    let present = 0;
    for (let row = 0; row < this.vectors.rows; row++) if (this.vectors.has(row)) present++;
    return present;
  }

  /** Indexes every row with a vector as it is now; swaps the index in when built. */
  private async build(): Promise<void> {
    const { vectors, scale } = this;
    const { signal } = this.closing;
    const started = performance.now();
    // Rows set or cleared from here on are scanned exactly next to the index's candidates.
    const changed = vectors.watch();
    const source = indexSource(vectors, scale);
    let index: VectorIndex;
    try {
      index = await this.buildIndex(source, signal, (indexed) => {
        this.observer.progress(indexed, source.rows.length);
      });
    } catch (error) {
      vectors.unwatch(changed);
      if (signal.aborted) return;
      throw error;
    }
    if (signal.aborted) {
      vectors.unwatch(changed);
      index.close();
      return;
    }
    for (const row of index.stale ?? []) changed.add(row);
    const previous = this.built;
    this.built = { index, changed, withBias: source.extra !== undefined };
    if (previous !== undefined) {
      vectors.unwatch(previous.changed);
      previous.index.close();
    }
    this.observer.built({
      rows: index.size,
      buildMs: performance.now() - started,
      bytes: index.bytes,
      stale: index.stale?.length,
      adopted: index.drift !== undefined,
      pointFormat: index.pointFormat,
    });
  }
}

/**
 * What an index of `vectors` is built of, as they are now: every row with a vector, each with
 * its bias over `scale` as one more value when the model has biases.
 */
export function indexSource(vectors: RowVectors, scale: number): IndexSource {
  const rows = new Int32Array(vectors.rows);
  let n = 0;
  for (let row = 0; row < rows.length; row++) if (vectors.has(row)) rows[n++] = row;
  const indexed = rows.slice(0, n);
  const { matrix, dimension, bias } = vectors;
  return { matrix, dimension, rows: indexed, extra: biasSlot(bias, indexed, scale) };
}

/**
 * The index's one more value per point: each row's bias over `scale` (the user's query holds 1
 * there), so that the inner product is the model score over `scale`; none when every bias is 0.
 */
export function biasSlot(
  bias: Float32Array | undefined,
  rows: Int32Array,
  scale: number,
): Float32Array | undefined {
  if (bias?.some((value) => value !== 0) !== true) return undefined;
  return Float32Array.from(rows, (row) => bias[row] / scale);
}

/** The user vector as the index compares: with the bias slot's 1 when the index has one. */
function annQuery(user: Float32Array, withBias: boolean): Float32Array {
  if (!withBias) return user;
  const query = new Float32Array(user.length + 1);
  query.set(user);
  query[user.length] = 1;
  return query;
}
