import { Random } from '../../../synthetic/prng';
import { COMBINER_INPUTS } from '../model/combiner';
import type { TokenStates } from '../../../common/token-states';

/** A click the user made before an impression. */
export interface HistoryClick {
  readonly itemId: string;
  /** Epoch ms; NaN when the source does not say (MIND histories carry no times). */
  readonly time: number;
}

/**
 * One impression: what was shown to a user at one moment and what they clicked. The one internal
 * representation of training data, whether it came from PostgreSQL events or MIND files.
 */
export interface Impression {
  readonly id: string;
  readonly userId: string;
  /** Epoch ms of the impression. */
  readonly time: number;
  /** The user's earlier clicks, MOST RECENT FIRST. */
  readonly history: readonly HistoryClick[];
  readonly clicked: readonly string[];
  /** Shown and not clicked; empty when the producer sent clicks without impressions. */
  readonly notClicked: readonly string[];
  /** What the served-slate log recorded of the candidates it holds (the combiner's inputs). */
  readonly served?: Readonly<Record<string, ServedInputs>>;
}

/** One candidate as it was served: its position and its feature inputs (SERVED_FEATURE_INPUTS). */
export interface ServedInputs {
  /** 1-based. */
  readonly position: number;
  readonly inputs: readonly number[];
}

/** The served features the combiner learns from besides the model score, in `inputs` order. */
export const SERVED_FEATURE_INPUTS = COMBINER_INPUTS.slice(1);

/** Text vectors of the frozen encoder, by item id. */
export interface ItemVectors {
  readonly encoderId: string;
  readonly dimension: number;
  get(itemId: string): Float32Array | undefined;
  /**
   * The same encoder's token states, for models with token attention: after its last layer, or
   * after layer L − k for a model that fine-tunes the top k.
   */
  readonly tokens?: ItemTokens;
  /** Text vectors a token model's own tower pooled from `tokens` (pooledTokenTexts). */
  readonly pooledTexts?: { get(itemId: string): Float32Array | undefined };
}

export interface ItemTokens {
  get(itemId: string): TokenStates | undefined;
}

export function vectorsFromMap(
  encoderId: string,
  dimension: number,
  map: ReadonlyMap<string, Float32Array>,
): ItemVectors {
  return { encoderId, dimension, get: (itemId) => map.get(itemId) };
}

/**
 * Time-based split: impressions in the last `fraction` of the time range (by count, ordered by
 * time) validate, earlier ones train, so validation never sees the future's clicks in training.
 */
export function splitByTime(
  impressions: readonly Impression[],
  fraction: number,
): { train: Impression[]; validation: Impression[]; cutoff: number } {
  const sorted = [...impressions].sort((a, b) => a.time - b.time || (a.id < b.id ? -1 : 1));
  const count = Math.floor(sorted.length * Math.min(Math.max(fraction, 0), 0.9));
  if (count === 0) return { train: sorted, validation: [], cutoff: Infinity };
  const cutoff = sorted[sorted.length - count].time;
  // Impressions at the cutoff instant all go to validation, so the split is by time, not by count.
  const train = sorted.filter((impression) => impression.time < cutoff);
  const validation = sorted.filter((impression) => impression.time >= cutoff);
  return { train, validation, cutoff };
}

/** Clicks per item, each (user, item) pair once: the popularity feature and the warm-item test. */
export function countClicks(impressions: readonly Impression[]): Map<string, number> {
  const seen = new Set<string>();
  const counts = new Map<string, number>();
  const add = (userId: string, itemId: string) => {
    const key = `${userId}\u0000${itemId}`;
    if (seen.has(key)) return;
    seen.add(key);
    counts.set(itemId, (counts.get(itemId) ?? 0) + 1);
  };
  for (const impression of impressions) {
    for (const click of impression.history) add(impression.userId, click.itemId);
    for (const itemId of impression.clicked) add(impression.userId, itemId);
  }
  return counts;
}

/**
 * Incremental training set: every new impression plus a seeded sample of older ones (`ratio` old
 * per new one), so the warm-started model keeps what it knew while it learns what changed.
 */
export function withReplay(
  fresh: readonly Impression[],
  older: readonly Impression[],
  ratio: number,
  seed: number | string,
): Impression[] {
  const wanted = Math.min(older.length, Math.round(fresh.length * ratio));
  const random = new Random(`replay:${String(seed)}`);
  return [...sampleOf(random, older, wanted), ...fresh].sort((a, b) => a.time - b.time);
}

/** At most `limit` impressions, a seeded sample keeping time order. */
export function subsample(
  impressions: readonly Impression[],
  limit: number,
  seed: number | string,
): Impression[] {
  if (impressions.length <= limit) return [...impressions];
  const random = new Random(`subsample:${String(seed)}`);
  return sampleOf(random, impressions, limit).sort((a, b) => a.time - b.time);
}

/** `count` distinct elements by a partial Fisher-Yates shuffle (O(n), unlike repeated splicing). */
export function sampleOf<T>(random: Random, values: readonly T[], count: number): T[] {
  const copy = [...values];
  const n = Math.min(count, copy.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random.next() * (copy.length - i));
    const swap = copy[i];
    copy[i] = copy[j];
    copy[j] = swap;
  }
  return copy.slice(0, n);
}

/** Shuffles in place (Fisher-Yates). */
export function shuffle<T>(random: Random, values: T[]): T[] {
  for (let i = values.length - 1; i > 0; i--) {
    const j = Math.floor(random.next() * (i + 1));
    const swap = values[i];
    values[i] = values[j];
    values[j] = swap;
  }
  return values;
}
