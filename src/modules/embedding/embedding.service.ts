import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { EmbeddingCacheRepository } from './embedding-cache.repository';
import { EmbeddingRepository } from './embedding.repository';
import { TextEncoderProvider } from './encoder.provider';
import { MicroBatcher } from './micro-batcher';

/**
 * What the ranking API needs from embeddings: vectors of catalog items (Redis, then PostgreSQL)
 * and vectors of free texts encoded on demand, with concurrent requests sharing one model run.
 */
@Injectable()
export class EmbeddingService {
  private readonly logger: Logger;
  private readonly batcher: MicroBatcher;
  private readonly runDuration;

  constructor(
    private readonly encoder: TextEncoderProvider,
    private readonly repository: EmbeddingRepository,
    private readonly cache: EmbeddingCacheRepository,
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
  ) {
    this.logger = logger.child({ component: 'embedding' });
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

  /** Stored vectors of these items (absent: not embedded yet). Redis first, misses from PostgreSQL. */
  async itemVectors(itemIds: readonly string[]): Promise<Map<string, Float32Array>> {
    const unique = [...new Set(itemIds)];
    const found = await this.cache.get(this.encoderId, unique).catch((error: unknown) => {
      this.logger.debug({ err: error }, 'embedding cache unavailable; reading PostgreSQL');
      return new Map<string, Float32Array>();
    });
    const missing = unique.filter((id) => !found.has(id));
    if (missing.length === 0) return found;
    const stored = await this.repository.vectors(this.encoderId, missing);
    for (const [id, vector] of stored) found.set(id, vector);
    if (stored.size > 0) {
      const entries = [...stored].map(([itemId, vector]) => ({ itemId, vector }));
      await this.cache.put(this.encoderId, entries).catch(() => undefined);
    }
    return found;
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
