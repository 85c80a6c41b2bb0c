import { HierarchicalNSW } from 'hnswlib-node';
import type { VectorIndex, VectorIndexFactory } from './retrieval';

export interface HnswSettings {
  /** Links per node. */
  readonly m: number;
  readonly efConstruction: number;
  /** Candidate list while searching; raised to the rows asked for when fewer. */
  readonly efSearch: number;
}

/** hnswlib's fixed seed: the same vectors in the same order build the same graph. */
const SEED = 100;

/**
 * HNSW (hnswlib, through hnswlib-node) over inner product. hnswlib's `ip` distance is
 * 1 - dot, so its nearest are the largest dot products; rows are its labels.
 */
class HnswVectorIndex implements VectorIndex {
  private readonly hnsw: HierarchicalNSW;
  private added = 0;
  private ef = 0;

  constructor(
    readonly dimension: number,
    private readonly capacity: number,
    private readonly settings: HnswSettings,
  ) {
    this.hnsw = new HierarchicalNSW('ip', dimension);
    this.hnsw.initIndex(Math.max(1, capacity), settings.m, settings.efConstruction, SEED);
  }

  get size(): number {
    return this.added;
  }

  /** hnswlib's layout: per node its vector, label and 2·M level-0 links; upper levels ~1/M of it. */
  get bytes(): number {
    const { m } = this.settings;
    const level0 = this.dimension * 4 + 8 + 4 + 2 * m * 4;
    return Math.round(this.capacity * (level0 + (m * 4 + 4) / (m - 1) + 16));
  }

  add(row: number, vector: Float32Array): void {
    this.hnsw.addPoint(Array.from(vector), row);
    this.added++;
  }

  search(query: Float32Array, count: number): Int32Array {
    const k = Math.min(count, this.added);
    if (k === 0) return new Int32Array(0);
    const ef = Math.max(this.settings.efSearch, k);
    if (ef !== this.ef) {
      this.hnsw.setEf(ef);
      this.ef = ef;
    }
    // Nearest first.
    return Int32Array.from(this.hnsw.searchKnn(Array.from(query), k).neighbors);
  }
}

export function hnswIndexFactory(settings: HnswSettings): VectorIndexFactory {
  return (dimension, capacity) => new HnswVectorIndex(dimension, capacity, settings);
}
