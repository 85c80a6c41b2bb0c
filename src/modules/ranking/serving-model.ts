import { IdIndex } from './id-index';

/**
 * The seam between ranking and whatever model is served on this replica. The registry swaps the
 * served model atomically (hot swap); ranking reads `current()` once per request and uses that
 * one model for the whole request, so a swap never mixes two versions in one answer.
 */

/** The catalog's item vectors in the model's space: row `i` of `matrix` belongs to `ids[i]`. */
export interface ModelCatalog {
  readonly ids: readonly string[];
  readonly index: IdIndex;
  readonly dimension: number;
  /** Row-major, `ids.length * dimension` values, contiguous for the top-k kernel. */
  readonly matrix: Float32Array;
  /** The item-only score term of each row (the model's popularity bias); absent: none. */
  readonly bias?: Float32Array;
}

/** One interaction of the user, with the vector of its item. */
export interface HistoryVector {
  readonly vector: Float32Array;
  readonly type: string;
  readonly ts: number;
}

export interface ServingModel {
  readonly versionId: string;
  /** Multiplies the dot product of user and item vectors (the model's scaled dot score). */
  readonly scale: number;
  readonly catalog: ModelCatalog;
  /** The interest vector pooled from history item vectors, most recent first; never empty input. */
  userVector(history: readonly HistoryVector[]): Float32Array;
  /** Vectors for items the catalog lacks, from their text (through the embedding micro-batcher). */
  encodeItems(items: readonly ItemText[]): Promise<Float32Array[]>;
  /** The item-only score term of an item outside the catalog (0 when the model has none). */
  itemBias(itemId: string): number;
}

export interface ItemText {
  readonly itemId: string;
  readonly text: string;
}

export interface ServingModelSource {
  current(): ServingModel | undefined;
}

export const SERVING_MODEL_SOURCE = Symbol('SERVING_MODEL_SOURCE');

/**
 * The replica's served model: the registry's active version (through `served`), unless a fixed
 * model is pinned. Pinning is for tests and benchmarks that need a deterministic model; it
 * replaces the answer in one assignment, like a registry swap.
 */
export class ServedModelHolder implements ServingModelSource {
  private pinned: { readonly model: ServingModel | undefined } | undefined;

  constructor(private readonly served: ServingModelSource) {}

  current(): ServingModel | undefined {
    return this.pinned ? this.pinned.model : this.served.current();
  }

  /** Serves `model` (undefined: no model) whatever the registry says, until `unpin`. */
  pin(model: ServingModel | undefined): void {
    this.pinned = { model };
  }

  /** Back to the registry's active version. */
  unpin(): void {
    this.pinned = undefined;
  }
}

/** A catalog from ids and their vectors (copied into one contiguous matrix). */
export function buildCatalog(
  ids: readonly string[],
  vectors: readonly Float32Array[],
  dimension: number,
): ModelCatalog {
  const matrix = new Float32Array(ids.length * dimension);
  vectors.forEach((vector, row) => {
    if (vector.length !== dimension) {
      throw new Error(`vector of ${ids[row] ?? row} has ${vector.length} values, not ${dimension}`);
    }
    matrix.set(vector, row * dimension);
  });
  return { ids, index: new IdIndex(ids), dimension, matrix };
}
