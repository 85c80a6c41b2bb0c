import { Injectable, OnModuleInit } from '@nestjs/common';
import { loadModel } from '../training/model/artifact';
import { InterestScorer, ScoredCatalog } from '../training/model/interest-scorer';
import { adaptCatalog, catalogBackend } from './catalog-adapter';
import { CatalogVectorsRepository, TextCatalog } from './catalog-vectors.repository';
import type { ModelLoader } from './registry.types';

/** What a replica scores with: the model's forward pass and its precomputed catalog. */
export interface LoadedInterestModel {
  readonly scorer: InterestScorer;
  readonly catalog: ScoredCatalog;
}

/**
 * Parses an interest-model artifact and runs every live catalog item's text vector through the
 * item tower once, so ranking does one dot product per candidate instead of the adapter.
 */
@Injectable()
export class InterestModelLoader implements ModelLoader<LoadedInterestModel>, OnModuleInit {
  /**
   * Text vectors do not depend on the model version: reading 50k of them costs seconds, checking
   * that nothing changed costs one scan. Only the adapter pass is redone per version.
   */
  private cached: { encoderId: string; fingerprint: string; text: TextCatalog } | undefined;

  constructor(private readonly vectors: CatalogVectorsRepository) {}

  async onModuleInit(): Promise<void> {
    await catalogBackend();
  }

  async load(artifact: Buffer): Promise<LoadedInterestModel> {
    const parsed = loadModel(artifact);
    const scorer = InterestScorer.fromArtifact(parsed);
    const text = await this.textCatalog(scorer.encoderId);
    if (text.ids.length > 0 && text.dimension !== scorer.dimension) {
      throw new Error(
        `catalog vectors of ${scorer.encoderId} have ${String(text.dimension)} values, the model expects ${String(scorer.dimension)}`,
      );
    }
    const { matrix, bias } = await adaptCatalog(parsed, scorer, text);
    return {
      scorer,
      catalog: { ids: text.ids, dimension: scorer.dimension, matrix, bias },
    };
  }

  private async textCatalog(encoderId: string): Promise<TextCatalog> {
    const fingerprint = await this.vectors.fingerprint(encoderId);
    const cached = this.cached;
    if (cached?.encoderId === encoderId && cached.fingerprint === fingerprint) return cached.text;
    const text = await this.vectors.catalog(encoderId);
    // A change between the two reads only means the next load reads again.
    this.cached = { encoderId, fingerprint, text };
    return text;
  }
}
