import { VectorMemory } from '../../common/vector-memory';
import type { TokenStateEncoder } from '../embedding/token-encoders';
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
 * What the item tower of a model with token attention reads instead of stored text vectors: the
 * items' texts, encoded to final token states through the version's own top encoder layers.
 */
export interface TokenTowerSource {
  readonly encoder: TokenStateEncoder;
  /** The current text of each item (deleted and unknown ones absent). */
  texts(itemIds: readonly string[]): Promise<ReadonlyMap<string, string>>;
}

/** Texts per encoder call of a catalog pass: bounds the token states held at once. */
const CATALOG_CHUNK = 256;

/**
 * A trained interest-model artifact as serving runs it: the item tower over catalogs in batched
 * matrix products (catalog-adapter.ts), the attention pooling for the user, and the tower over
 * on-demand text vectors for candidates the catalog lacks. A model with token attention pools
 * its items' token states instead of their stored vectors, for the catalog and on demand alike.
 */
export class ArtifactInterestModel implements InterestModel {
  private readonly scorer: InterestScorer;
  private readonly tokens: TokenTowerSource | undefined;
  readonly combiner: ScoreCombiner | undefined;

  constructor(
    readonly versionId: string,
    private readonly artifact: ModelArtifact,
    private readonly encoder: OnDemandEncoder,
    tokens?: TokenTowerSource,
  ) {
    // Stored text vectors are mean-pooled: a token-attention model's tower needs the texts.
    if (artifact.manifest.architecture.tokenAttention && tokens === undefined) {
      throw new Error(`model ${versionId} pools token states, and no token encoder was given`);
    }
    this.tokens = artifact.manifest.architecture.tokenAttention ? tokens : undefined;
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
    const matrix = new Float32Array(new SharedArrayBuffer(text.ids.length * this.dimension * 4));
    return { matrix, bias: await this.towerInto(text, matrix) };
  }

  /**
   * The item tower over a whole catalog, into WebAssembly memory that serving takes over as its
   * rows' (row-vectors.ts) instead of copying it: 1.5 GB less at a million items of 384-d.
   */
  async catalogTower(text: TextVectors): Promise<{ memory: VectorMemory; bias: Float32Array }> {
    const memory = new VectorMemory(this.dimension, text.ids.length);
    return { memory, bias: await this.towerInto(text, memory.matrix) };
  }

  /** Item i's vector to row i of `out`; the items' biases. */
  private async towerInto(
    text: TextVectors,
    out: Float32Array<SharedArrayBuffer>,
  ): Promise<Float32Array> {
    if (text.ids.length > 0 && text.dimension !== this.dimension) {
      throw new Error(
        `text vectors of ${this.encoderId} have ${String(text.dimension)} values, the model expects ${String(this.dimension)}`,
      );
    }
    const { tokens } = this;
    if (tokens === undefined) return await adaptCatalog(this.artifact, this.scorer, text, out);
    // The stored vectors only say which items are embedded and when their text changed.
    const pooled = new Float32Array(text.ids.length * this.dimension);
    for (let start = 0; start < text.ids.length; start += CATALOG_CHUNK) {
      const ids = text.ids.slice(start, start + CATALOG_CHUNK);
      const texts = await tokens.texts(ids);
      // An item deleted since the vectors were read keeps a zero row until the follower drops it.
      const known = ids.flatMap((id, i) => {
        const itemText = texts.get(id);
        return itemText === undefined ? [] : [{ row: start + i, text: itemText }];
      });
      const states = await tokens.encoder.encode(known.map((entry) => entry.text));
      known.forEach(({ row }, i) => {
        pooled.set(this.scorer.tokenPooledText(states[i]), row * this.dimension);
      });
    }
    return await adaptCatalog(this.artifact, this.scorer, { ...text, matrix: pooled }, out);
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
    const texts = items.map((item) => item.text);
    const tokens = this.tokens?.encoder;
    const vectors =
      tokens === undefined
        ? await Promise.all(texts.map((text) => this.encoder.encodeOnDemand(text, signal)))
        : await Promise.all(
            texts.map(async (text) =>
              this.scorer.tokenPooledText(await tokens.encodeOnDemand(text, signal)),
            ),
          );
    return vectors.map((vector, i) => this.scorer.itemVector(vector, items[i]?.itemId));
  }

  itemBias(itemId: string): number {
    return this.scorer.itemBias(itemId);
  }
}
