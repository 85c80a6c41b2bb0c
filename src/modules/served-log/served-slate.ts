/** The operations whose answers are logged. */
export const SERVED_OPERATIONS = ['rank', 'recommend'] as const;
export type ServedOperation = (typeof SERVED_OPERATIONS)[number];

/**
 * A served slate: what one `rank` or `recommend` answer showed, in order, with the feature inputs
 * each item was scored with. The ranking module hands one to the recorder per answer; the ingest
 * role stores it; training joins it to the clicks that carry its request id.
 *
 * The recorder encodes it within `record`: the slate and its arrays are the caller's again after.
 */
export interface ServedSlate {
  readonly requestId: string;
  readonly userId: string;
  readonly operation: 'rank' | 'recommend';
  /** ms since epoch: the time the features were computed for. */
  readonly servedAt: number;
  readonly modelVersion: string | null;
  readonly profile: string;
  /** The running experiment (its id) and the arm that served the slate; null outside one. */
  readonly experiment: { readonly id: string; readonly arm: string } | null;
  /** How many candidates were ranked (the slate may be cut to the logging depth). */
  readonly candidates: number;
  /** Names of the logged inputs, in the order `values` holds them per item. */
  readonly features: readonly string[];
  /** Item ids in served order: position p (1-based) is `itemIds[p - 1]`. */
  readonly itemIds: readonly string[];
  /** Final scores, served order. */
  readonly scores: Float64Array;
  /** Row-major, served order: item p's inputs are `values[(p-1)*features.length ..]`; NaN = none. */
  readonly values: Float64Array;
}
