import type { ModelArtifact } from '../training/model/artifact';
import { InterestScorer } from '../training/model/interest-scorer';
import { adaptCatalog } from './catalog-adapter';
import { runnableCombiner } from '../training/model/combiner';
import type {
  HistoryVector,
  InterestModel,
  ItemText,
  ScoreCombiner,
  TextVectors,
} from './served-model';

/** Encodes one free text with the service's text encoder (shared model runs). */
export interface OnDemandEncoder {
  readonly encoderId: string;
  encodeOnDemand(text: string, signal?: AbortSignal): Promise<Float32Array>;
}

/**
 * A trained interest-model artifact as serving runs it: the item tower over catalogs in batched
 * matrix products (catalog-adapter.ts), the attention pooling for the user, and the tower over
 * on-demand text vectors for candidates the catalog lacks.
 */
export class ArtifactInterestModel implements InterestModel {
  private readonly scorer: InterestScorer;
  readonly combiner: ScoreCombiner | undefined;

  constructor(
    readonly versionId: string,
    private readonly artifact: ModelArtifact,
    private readonly encoder: OnDemandEncoder,
  ) {
    // Serving stores mean-pooled text vectors only: a token-attention model's item tower needs the
    // token states (after layer L − k when it fine-tunes k encoder layers), which no table holds
    // yet. Refusing beats ranking with the wrong item vectors.
    if (artifact.manifest.architecture.tokenAttention) {
      throw new Error(
        `model ${versionId} pools token states, which serving does not store (only offline eval reads them)`,
      );
    }
    this.scorer = InterestScorer.fromArtifact(artifact);
    const spec = artifact.manifest.combiner;
    this.combiner = spec === undefined ? undefined : runnableCombiner(spec);
  }

  get encoderId(): string {
    return this.scorer.encoderId;
  }

  get dimension(): number {
    return this.scorer.dimension;
  }

  get scale(): number {
    return this.scorer.scale;
  }

  async itemTower(text: TextVectors): Promise<{ matrix: Float32Array; bias: Float32Array }> {
    if (text.ids.length > 0 && text.dimension !== this.dimension) {
      throw new Error(
        `text vectors of ${this.encoderId} have ${String(text.dimension)} values, the model expects ${String(this.dimension)}`,
      );
    }
    return await adaptCatalog(this.artifact, this.scorer, text);
  }

  userVector(history: readonly HistoryVector[]): Float32Array {
    const now = Date.now();
    return this.scorer.userVector(
      history.map((entry) => entry.vector),
      history.map((entry) => now - entry.ts),
    );
  }

  async encodeItems(items: readonly ItemText[], signal?: AbortSignal): Promise<Float32Array[]> {
    // Vectors of another encoder live in another space: scoring them would be noise.
    if (this.encoder.encoderId !== this.encoderId) {
      throw new Error(
        `model ${this.versionId} reads ${this.encoderId} vectors, the on-demand encoder is ${this.encoder.encoderId}`,
      );
    }
    const vectors = await Promise.all(
      items.map((item) => this.encoder.encodeOnDemand(item.text, signal)),
    );
    return vectors.map((vector, i) => this.scorer.itemVector(vector, items[i]?.itemId));
  }

  itemBias(itemId: string): number {
    return this.scorer.itemBias(itemId);
  }
}
