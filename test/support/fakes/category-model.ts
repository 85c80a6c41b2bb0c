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
  /** What `vectors: 'words'` places the item by (its title, category and description). */
  readonly text?: string;
}

export interface FakeModelOptions {
  readonly versionId: string;
  readonly dimension?: number;
  /**
   * How item vectors are placed. `category` (the default): the item's category direction plus
   * isotropic noise, so that within a category items differ in every dimension alike (an ANN
   * index's hardest case). `words`: the sum of a direction per word of the item's text, weighted
   * by the word's rarity in the catalog (IDF), plus a little noise; like a sentence encoder's
   * vectors, items sharing words lie close and the data has a low intrinsic dimension.
   */
  readonly vectors?: 'category' | 'words';
  /** Item-specific noise relative to the category or words direction (default 0.3, words 0.1). */
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

/** The words of a text, lower case. */
function words(text: string): string[] {
  return text.toLowerCase().match(/[a-z0-9-]+/g) ?? [];
}

/**
 * An in-memory stand-in for a trained interest model, for tests and benchmarks: an item's vector
 * is placed by its category or by the words of its text (`vectors`) plus item noise, the user
 * vector a recency-weighted mean of history vectors, and a candidate text is placed near the
 * first category it names (by its words with `vectors: 'words'`). Its catalog is `items`; items
 * it learns of later (the item tower) are placed at random.
 */
export function fakeCategoryModel(
  items: readonly FakeModelItem[],
  options: FakeModelOptions,
): LoadedModel {
  const dimension = options.dimension ?? 32;
  const byWords = options.vectors === 'words';
  const noise = options.noise ?? (byWords ? 0.1 : 0.3);
  const directions = new Map<string, Float32Array>();
  const direction = (key: string) => {
    let found = directions.get(key);
    if (found === undefined) {
      found = normalise(gaussianVector(key, dimension));
      directions.set(key, found);
    }
    return found;
  };
  const documents = new Map<string, number>();
  if (byWords) {
    for (const item of items) {
      for (const word of new Set(words(item.text ?? ''))) {
        documents.set(word, (documents.get(word) ?? 0) + 1);
      }
    }
  }
  const idf = (word: string) => Math.log(items.length / (documents.get(word) ?? 1));
  /** The item's direction before noise: its category's, or its words' (undefined: none). */
  const base = (category: string | undefined, text: string | undefined) => {
    if (!byWords || text === undefined) {
      return category === undefined ? undefined : direction(`category:${category}`);
    }
    const sum = new Float32Array(dimension);
    for (const word of words(text)) {
      const weight = idf(word);
      const along = direction(`word:${word}`);
      for (let i = 0; i < dimension; i++) sum[i] += weight * along[i];
    }
    return normalise(sum);
  };
  const place = (from: Float32Array | undefined, seed: string) => {
    const vector = gaussianVector(seed, dimension);
    const scale = noise / Math.sqrt(dimension);
    for (let i = 0; i < dimension; i++) vector[i] = (from?.[i] ?? 0) + vector[i] * scale;
    return normalise(vector);
  };
  const categories = [...new Set(items.flatMap((item) => (item.category ? [item.category] : [])))];
  const ids = items.map((item) => item.itemId);
  const matrix = new Float32Array(items.length * dimension);
  const rowOf = new Map<string, number>();
  items.forEach((item, row) => {
    rowOf.set(item.itemId, row);
    const from = base(item.category ?? undefined, item.text);
    matrix.set(place(from, `item:${item.itemId}`), row * dimension);
  });
  const tower = (towerIds: readonly string[]) => {
    const out = new Float32Array(towerIds.length * dimension);
    towerIds.forEach((itemId, i) => {
      const row = rowOf.get(itemId);
      out.set(
        row === undefined
          ? place(undefined, `item:${itemId}`)
          : matrix.subarray(row * dimension, (row + 1) * dimension),
        i * dimension,
      );
    });
    return out;
  };
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
            return place(base(category, text), `text:${text}`);
          }),
        );
      },
      itemBias: () => 0,
    },
    catalog: { ids, matrix },
  };
}
