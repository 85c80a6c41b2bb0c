import { decay, engagementOf, StoredPopularity } from '../online-state/online-state.schema';
import { IdIndex } from './id-index';

/** The catalog facts ranking merges, as PostgreSQL's `items` holds them. */
export interface ItemFeatures {
  readonly itemId: string;
  readonly category: string | undefined;
  readonly price: number | undefined;
  readonly createdAtMs: number | undefined;
  readonly deleted: boolean;
}

/** Per row: creation time, price (NaN: unknown). */
const FEATURE_STRIDE = 2;
/** Per row: ref, impressions, clicks, add-to-carts, purchases (ref NaN: no engagement). */
const POPULARITY_STRIDE = 5;
const INITIAL_CAPACITY = 1024;
/** Row status, besides 0: features never read (the id came from a model or from events). */
const LIVE = 1;
const DELETED = 2;

/**
 * Every item this replica knows, by row: id, id index, catalog features and the replica copy of
 * its popularity, each a column of typed values, so a candidate's data is a few cache lines found
 * by one id lookup. Rows are only ever added (a deleted item keeps its row, marked), so a row
 * number stays valid for as long as the process lives, and a served model's item vectors
 * (row-vectors.ts) are kept by the same rows.
 */
export class ItemTable {
  private readonly index = new IdIndex();
  private capacity = 0;
  private features = new Float64Array(0);
  private categories: (string | undefined)[] = [];
  private status = new Uint8Array(0);
  private popularity = new Float64Array(0);

  constructor() {
    this.grow(INITIAL_CAPACITY);
  }

  /** Rows in use: 0 .. size - 1. */
  get size(): number {
    return this.index.size;
  }

  /** The item's row; -1 when this replica has never heard of it. */
  row(itemId: string): number {
    return this.index.get(itemId) ?? -1;
  }

  /** The rows of `count` item ids (`idAt(i)`) into `out`; -1 for an item never heard of. */
  rowsOf(count: number, idAt: (i: number) => string, out: Int32Array): void {
    this.index.rowsOf(count, idAt, out);
  }

  id(row: number): string {
    return this.index.id(row);
  }

  /** The item's row, added (without features or popularity) when it has none yet. */
  ensureRow(itemId: string): number {
    const found = this.index.get(itemId);
    if (found !== undefined) return found;
    if (this.size === this.capacity) this.grow(this.capacity * 2);
    return this.index.add(itemId);
  }

  setFeatures(item: ItemFeatures): number {
    const row = this.ensureRow(item.itemId);
    this.features[FEATURE_STRIDE * row] = item.createdAtMs ?? Number.NaN;
    this.features[FEATURE_STRIDE * row + 1] = item.price ?? Number.NaN;
    this.categories[row] = item.category;
    this.status[row] = item.deleted ? DELETED : LIVE;
    return row;
  }

  /** Creation time in ms; NaN when unknown. */
  createdAtMs(row: number): number {
    return this.features[FEATURE_STRIDE * row];
  }

  /** NaN when unknown. */
  price(row: number): number {
    return this.features[FEATURE_STRIDE * row + 1];
  }

  category(row: number): string | undefined {
    return this.categories[row];
  }

  deleted(row: number): boolean {
    return this.status[row] === DELETED;
  }

  /** `stored` undefined: no engagement (after a reset). */
  setPopularity(row: number, stored: StoredPopularity | undefined): void {
    const offset = POPULARITY_STRIDE * row;
    if (stored === undefined) {
      this.popularity[offset] = Number.NaN;
      return;
    }
    this.popularity[offset] = stored.ref;
    this.popularity[offset + 1] = stored.imp;
    this.popularity[offset + 2] = stored.clk;
    this.popularity[offset + 3] = stored.cart;
    this.popularity[offset + 4] = stored.buy;
  }

  /** Replaces every row's popularity with `values` (rows without a value: none). */
  resetPopularity(values: readonly (readonly [string, StoredPopularity])[]): void {
    this.popularity.fill(Number.NaN);
    for (const [itemId, stored] of values) {
      const row = this.row(itemId);
      if (row >= 0) this.setPopularity(row, stored);
    }
  }

  hasPopularity(row: number): boolean {
    return !Number.isNaN(this.popularity[POPULARITY_STRIDE * row]);
  }

  /**
   * Writes the row's decayed counts at `nowMs` to `out` from `at`, in `popularityColumns`' order;
   * leaves them as they are (zeros) without engagement.
   */
  popularityInto(row: number, nowMs: number, halfLifeMs: number, out: Float64Array, at: number) {
    const offset = POPULARITY_STRIDE * row;
    const ref = this.popularity[offset];
    if (Number.isNaN(ref)) return;
    const scale = decay(ref, nowMs, halfLifeMs);
    out[at] = this.popularity[offset + 1] * scale;
    out[at + 1] = this.popularity[offset + 2] * scale;
    out[at + 2] = this.popularity[offset + 3] * scale;
    out[at + 3] = this.popularity[offset + 4] * scale;
  }

  /** The row's decayed engagement at `nowMs` (clicks, carts and purchases weighed); 0 without. */
  engagementAt(row: number, nowMs: number, halfLifeMs: number): number {
    const offset = POPULARITY_STRIDE * row;
    const ref = this.popularity[offset];
    if (Number.isNaN(ref)) return 0;
    return (
      decay(ref, nowMs, halfLifeMs) *
      engagementOf(
        this.popularity[offset + 1],
        this.popularity[offset + 2],
        this.popularity[offset + 3],
        this.popularity[offset + 4],
      )
    );
  }

  /** Live catalog items, newest first (unknown creation last), that `accept` lets through. */
  newest(count: number, accept: (itemId: string) => boolean): string[] {
    const rows: number[] = [];
    for (let row = 0; row < this.size; row++) if (this.status[row] === LIVE) rows.push(row);
    const time = (row: number) => {
      const ms = this.createdAtMs(row);
      return Number.isNaN(ms) ? 0 : ms;
    };
    rows.sort((a, b) => time(b) - time(a));
    const out: string[] = [];
    for (const row of rows) {
      if (out.length === count) break;
      const itemId = this.id(row);
      if (accept(itemId)) out.push(itemId);
    }
    return out;
  }

  private grow(capacity: number): void {
    const features = new Float64Array(FEATURE_STRIDE * capacity).fill(Number.NaN);
    features.set(this.features);
    const status = new Uint8Array(capacity);
    status.set(this.status);
    const popularity = new Float64Array(POPULARITY_STRIDE * capacity).fill(Number.NaN);
    popularity.set(this.popularity);
    this.features = features;
    this.status = status;
    this.popularity = popularity;
    for (let row = this.capacity; row < capacity; row++) this.categories.push(undefined);
    this.capacity = capacity;
  }
}
