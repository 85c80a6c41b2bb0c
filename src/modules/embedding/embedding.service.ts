import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { Metrics } from '../metrics/metrics.registry';
import { EmbeddingRepository } from './embedding.repository';
import { TextEncoderProvider } from './encoder.provider';
import { MicroBatcher } from './micro-batcher';

/**
 * What the ranking API needs from embeddings: the catalog's item texts, and vectors of free texts
 * encoded on demand, with concurrent requests sharing one model run.
 */
@Injectable()
export class EmbeddingService {
  private readonly batcher: MicroBatcher;
  private readonly runDuration;

  constructor(
    private readonly encoder: TextEncoderProvider,
    private readonly repository: EmbeddingRepository,
    @Inject(APP_CONFIG) config: AppConfig,
    metrics: Metrics,
  ) {
    this.runDuration = metrics.histogram(
      'embedding_on_demand_run_seconds',
      'One model run of the on-demand micro-batcher',
      ['outcome'],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    );
    const batcher = () => this.batcher;
    metrics.gauge(
      'embedding_on_demand_queued_texts',
      'Candidate texts waiting for on-demand encoding (bounded by EMBEDDING_ONDEMAND_MAX_QUEUE)',
      () => batcher().queued,
    );
    this.batcher = new MicroBatcher((texts) => this.run(texts), {
      maxBatch: config.embedding.onDemandMaxBatch,
      maxQueued: config.embedding.onDemandMaxQueue,
      maxWaitMs: config.embedding.onDemandMaxWaitMs,
    });
  }

  get encoderId(): string {
    return this.encoder.encoderId;
  }

  /** The vector of a text the catalog may not have; shares a model run with concurrent callers. */
  encodeOnDemand(text: string, signal?: AbortSignal): Promise<Float32Array> {
    return this.batcher.submit(text, signal);
  }

  /** The encoder input text of each live item among `itemIds` (the catalog's current text). */
  itemTexts(itemIds: readonly string[]): Promise<Map<string, string>> {
    return this.repository.itemTexts(itemIds);
  }

  private async run(texts: readonly string[]): Promise<Float32Array[]> {
    const encoder = await this.encoder.get();
    const stop = this.runDuration.startTimer();
    try {
      const vectors = await encoder.encode(texts);
      stop({ outcome: 'ok' });
      return vectors;
    } catch (error) {
      stop({ outcome: 'error' });
      throw error;
    }
  }
}
