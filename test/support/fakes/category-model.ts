import type {
  HistoryVector,
  ItemText,
  LoadedModel,
  TextVectors,
} from '../../../src/modules/serving/served-model';
import { Random } from '../../../src/synthetic';

export interface FakeModelItem {
  readonly itemId: string;
  readonly category?: string | null;
}

export interface FakeModelOptions {
  readonly versionId: string;
  readonly dimension?: number;
  /** Item-specific noise relative to the category direction (default 0.3). */
  readonly noise?: number;
  /** Fails `encodeTexts` (an encoder outage). */
  readonly failEncoding?: boolean;
}

function normalise(vector: Float32Array): Float32Array {
  let norm = 0;
  for (const value of vector) norm += value * value;
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < vector.length; i++) vector[i] /= norm;
  return vector;
}

function gaussianVector(seed: string, dimension: number): Float32Array {
  const random = new Random(seed);
  return Float32Array.from({ length: dimension }, () => {
    // Box-Muller: directions uniform on the sphere.
    const u = 1 - random.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.next());
  });
}

/**
 * An in-memory stand-in for a trained interest model, for tests and benchmarks: an item's vector
 * is its category's direction plus item noise, the user vector a recency-weighted mean of history
 * vectors, and a candidate text is placed near the first category it names. Its catalog is
 * `items`; items it learns of later (the item tower) are placed by their category when it knows
 * them, at random otherwise.
 */
export function fakeCategoryModel(
  items: readonly FakeModelItem[],
  options: FakeModelOptions,
): LoadedModel {
  const dimension = options.dimension ?? 32;
  const noise = options.noise ?? 0.3;
  const directions = new Map<string, Float32Array>();
  const direction = (category: string) => {
    let found = directions.get(category);
    if (found === undefined) {
      found = normalise(gaussianVector(`category:${category}`, dimension));
      directions.set(category, found);
    }
    return found;
  };
  const place = (category: string | undefined, seed: string) => {
    const vector = gaussianVector(seed, dimension);
    const base = category === undefined ? undefined : direction(category);
    const scale = noise / Math.sqrt(dimension);
    for (let i = 0; i < dimension; i++) vector[i] = (base?.[i] ?? 0) + vector[i] * scale;
    return normalise(vector);
  };
  const categoryOf = new Map<string, string | undefined>();
  for (const item of items) {
    categoryOf.set(item.itemId, item.category ?? undefined);
    if (item.category) direction(item.category);
  }
  const tower = (ids: readonly string[]) => {
    const matrix = new Float32Array(ids.length * dimension);
    ids.forEach((itemId, row) => {
      matrix.set(place(categoryOf.get(itemId), `item:${itemId}`), row * dimension);
    });
    return matrix;
  };
  const categories = [...directions.keys()];
  const ids = items.map((item) => item.itemId);
  return {
    model: {
      versionId: options.versionId,
      encoderId: 'fake-category-model',
      dimension,
      scale: 1,
      itemTower: (text: TextVectors) =>
        Promise.resolve({ matrix: tower(text.ids), bias: new Float32Array(text.ids.length) }),
      userVector(history: readonly HistoryVector[]): Float32Array {
        const out = new Float32Array(dimension);
        history.forEach((entry, i) => {
          const weight = 0.9 ** i;
          for (let j = 0; j < dimension; j++) out[j] += weight * entry.vector[j];
        });
        return normalise(out);
      },
      encodeItems(texts: readonly ItemText[]): Promise<Float32Array[]> {
        if (options.failEncoding === true) return Promise.reject(new Error('encoder unavailable'));
        return Promise.resolve(
          texts.map(({ text }) => {
            const lower = text.toLowerCase();
            const category = categories.find((name) => lower.includes(name.toLowerCase()));
            return place(category, `text:${text}`);
          }),
        );
      },
      itemBias: () => 0,
    },
    catalog: { ids, matrix: tower(ids) },
  };
}
