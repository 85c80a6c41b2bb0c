import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from '../../common/logger';
import { LOGGER } from '../../infra/tokens';
import { EmbeddingService } from '../embedding/embedding.service';
import type { LoadedInterestModel } from '../registry/interest-model.loader';
import { ModelSwapService } from '../registry/model-swap.service';
import type { ServingModel as SwappedModel } from '../registry/registry.types';
import { InterestScorer } from '../training/model/interest-scorer';
import { IdIndex } from './id-index';
import type {
  HistoryVector,
  ItemText,
  ModelCatalog,
  ServingModel,
  ServingModelSource,
} from './serving-model';

/** Encodes one free text with the service's text encoder (shared model runs). */
export interface OnDemandEncoder {
  readonly encoderId: string;
  encodeOnDemand(text: string): Promise<Float32Array>;
}

/**
 * Ranking's view of an interest model the registry loaded: the precomputed catalog (adapted item
 * vectors and their bias), the model's attention pooling for the user, and its item adapter over
 * on-demand text vectors for candidates the catalog lacks.
 */
export function interestServingModel(
  versionId: string,
  loaded: LoadedInterestModel,
  encoder: OnDemandEncoder,
): ServingModel {
  const { scorer, catalog } = loaded;
  const modelCatalog: ModelCatalog = {
    ids: catalog.ids,
    index: new IdIndex(catalog.ids),
    dimension: catalog.dimension,
    matrix: catalog.matrix,
    // Most models have no popularity term: skip the per-row add then.
    bias: catalog.bias.some((value) => value !== 0) ? catalog.bias : undefined,
  };
  return {
    versionId,
    scale: scorer.scale,
    catalog: modelCatalog,
    userVector(history: readonly HistoryVector[]): Float32Array {
      const now = Date.now();
      return scorer.userVector(
        history.map((entry) => entry.vector),
        history.map((entry) => now - entry.ts),
      );
    },
    async encodeItems(items: readonly ItemText[]): Promise<Float32Array[]> {
      // Vectors of another encoder live in another space: scoring them would be noise.
      if (encoder.encoderId !== scorer.encoderId) {
        throw new Error(
          `model ${versionId} reads ${scorer.encoderId} vectors, the on-demand encoder is ${encoder.encoderId}`,
        );
      }
      const vectors = await Promise.all(items.map((item) => encoder.encodeOnDemand(item.text)));
      return vectors.map((vector, i) => scorer.itemVector(vector, items[i]?.itemId));
    },
    itemBias: (itemId) => scorer.itemBias(itemId),
  };
}

function isInterestModel(model: unknown): model is LoadedInterestModel {
  return (
    typeof model === 'object' &&
    model !== null &&
    (model as Partial<LoadedInterestModel>).scorer instanceof InterestScorer
  );
}

/**
 * The registry's hot-swapped model as ranking's `ServingModelSource`. The adapted view (mainly
 * the id index over the catalog) is built once per swapped model and reused until the next swap;
 * a request keeps the object it took, so a swap never mixes versions in one answer.
 */
@Injectable()
export class RegistryModelSource implements ServingModelSource {
  private readonly logger: Logger;
  private adapted:
    { readonly from: SwappedModel; readonly model: ServingModel | undefined } | undefined;

  constructor(
    private readonly swaps: ModelSwapService,
    private readonly embedding: EmbeddingService,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ component: 'ranking-model' });
  }

  current(): ServingModel | undefined {
    const served = this.swaps.serving();
    if (served === undefined) return undefined;
    const adapted = this.adapted;
    if (adapted?.from === served) return adapted.model;
    let model: ServingModel | undefined;
    if (isInterestModel(served.model)) {
      model = interestServingModel(served.versionId, served.model, this.embedding);
    } else {
      this.logger.error(
        { versionId: served.versionId },
        'served model is not an interest model; ranking without the model',
      );
    }
    this.adapted = { from: served, model };
    return model;
  }
}
