import type { VectorMemory } from '../../common/vector-memory';
import type { ItemTable } from './item-table';
import type { Retrieval } from './retrieval';
import type { RowVectors } from './row-vectors';

/** One interaction of the user, with the vector of its item. */
export interface HistoryVector {
  readonly vector: Float32Array;
  readonly type: string;
  readonly ts: number;
}

export interface ItemText {
  readonly itemId: string;
  readonly text: string;
}

/** Text vectors of items, one row-major matrix: row `i` belongs to `ids[i]`. */
export interface TextVectors {
  readonly ids: readonly string[];
  readonly dimension: number;
  readonly matrix: Float32Array;
}

/**
 * What one model version computes. The loader builds it from the version's artifact
 * (interest-model.ts); tests serve stand-ins of their own.
 */
export interface InterestModel {
  readonly versionId: string;
  /** The text encoder whose vectors the item tower reads. */
  readonly encoderId: string;
  readonly dimension: number;
  /** Multiplies the dot product of user and item vectors (the model's scaled dot score). */
  readonly scale: number;
  /** The item tower over items' stored text vectors, and each item's score bias. */
  itemTower(text: TextVectors): Promise<{ matrix: Float32Array; bias: Float32Array }>;
  /** The interest vector pooled from history item vectors, most recent first; never empty input. */
  userVector(history: readonly HistoryVector[]): Float32Array;
  /**
   * Item vectors of texts no stored vector covers (on-demand encoding, then the tower); `signal`
   * withdraws texts not yet encoded when the request gives up.
   */
  encodeItems(items: readonly ItemText[], signal?: AbortSignal): Promise<Float32Array[]>;
  /** The item-only score term of an item outside the table (0 when the model has none). */
  itemBias(itemId: string): number;
  /** The learned combiner fitted with this model; absent: profiles' hand weights merge. */
  readonly combiner?: ScoreCombiner;
}

/**
 * A version's learned combiner (training/model/combiner.ts): the contribution of each input it
 * has a shape for, by ranking part name.
 */
export interface ScoreCombiner {
  readonly inputs: readonly string[];
  /** The model part's contribution for an item without a model score. */
  readonly missingModel: number;
  /** The shape of `inputs[input]` at `value`. */
  contribution(input: number, value: number): number;
}

/** Item vectors by item: row `i` of `matrix` (and `bias[i]`) belongs to `ids[i]`. */
export interface CatalogVectors {
  readonly ids: readonly string[];
  readonly matrix: Float32Array;
  readonly bias?: Float32Array;
  /**
   * The WebAssembly memory `matrix` lies in (the loader's): serving takes it over as its rows'
   * and moves the rows in place, where it copies any other matrix.
   */
  readonly memory?: VectorMemory;
}

/** A model version as loaded, with its item vectors for the catalog of that moment. */
export interface LoadedModel {
  readonly model: InterestModel;
  readonly catalog: CatalogVectors;
  /** When the catalog's text vectors were read (database clock): later ones are followed. */
  readonly catalogReadAt?: Date;
  /**
   * Lets go of `catalog`'s vectors (empty from then on): serving calls it once its rows hold
   * them (1.5 GB at a million items of 384-d); `taken`: serving's rows are `catalog.memory`.
   */
  releaseCatalog?(taken?: boolean): void;
}

/** The served version: its model, its item vectors by item-table row, and retrieval over them. */
export interface ServedModel {
  readonly versionId: string;
  readonly model: InterestModel;
  readonly vectors: RowVectors;
  readonly retrieval: Retrieval;
}

/**
 * What a request works with, taken once per request: every known item by row, and the served
 * model (undefined: none yet). The table only grows and the model only changes by replacing the
 * whole object, so one request never mixes two versions.
 */
export interface Serving {
  readonly items: ItemTable;
  readonly served: ServedModel | undefined;
}

/** Turns a version's artifact into a loaded model (parsing, the item tower over the catalog). */
export interface ModelLoader {
  load(artifact: Buffer, version: { readonly id: string }): Promise<LoadedModel>;
}

export const MODEL_LOADER = Symbol('MODEL_LOADER');

/**
 * The loaded versions of this replica: the active one, and those the running experiment's arms
 * serve besides it; the model-swap service in production.
 */
export interface LoadedModels {
  current(): LoadedModel | undefined;
  /** Arm versions by id (never the active one); a new map per call. */
  others(): ReadonlyMap<string, LoadedModel>;
  /** `listener` runs after every change of `current()` or `others()`. */
  onChange(listener: () => void): void;
  /**
   * `prepare` runs on each version once it has loaded and before `current()` or `others()`
   * return it; the version waits for it (and fails to load when it throws).
   */
  beforeServing(prepare: (loaded: LoadedModel) => Promise<void>): void;
}

export const LOADED_MODELS = Symbol('LOADED_MODELS');
