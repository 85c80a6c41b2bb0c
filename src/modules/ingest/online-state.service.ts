import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { OnlineStateWriter } from '../online-state/online-state.writer';
import { IngestMetrics } from './ingest.metrics';
import { IngestRepository, StoredBatch, StoredEvent } from './ingest.repository';

export interface RebuildProgress {
  readonly applied: number;
  readonly total: number;
}

/**
 * Keeps Redis in step with PostgreSQL. Every stored batch queues its online-state update in
 * `online_state_pending` (same transaction) under a token; the row goes when the update reaches
 * Redis. What a crash or a Redis outage leaves there is applied by the catch-up.
 */
@Injectable()
export class OnlineStateService {
  private readonly logger: Logger;
  private readonly metrics: IngestMetrics;
  /** True while the backlog may be non-empty. */
  private stale = true;
  private draining: Promise<void> | undefined;

  constructor(
    private readonly repository: IngestRepository,
    private readonly redis: OnlineStateWriter,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
  ) {
    this.logger = logger.child({ component: 'online-state' });
    this.metrics = new IngestMetrics(metrics);
  }

  /**
   * Applies a newly stored batch to Redis under its token, then settles the queued row. When Redis
   * fails (or the state is already stale) the row stays owed and the catch-up applies it later.
   */
  async apply(batch: StoredBatch): Promise<boolean> {
    const { events, token } = batch;
    if (events.length === 0 || token === undefined) return true;
    if (this.stale) return false;
    try {
      await this.applyOwed(events, token);
      await this.repository.settlePending(token);
      return true;
    } catch (error) {
      this.logger.warn(
        { err: error, events: events.length },
        'online state update failed; events stored, state marked stale until caught up',
      );
      this.markStale();
      return false;
    }
  }

  private readonly applyOwed = (events: StoredEvent[], token: string): Promise<void> =>
    this.redis.apply(events, token);

  isStale(): boolean {
    return this.stale;
  }

  /** Applies the backlog (if any) in batches; leaves it stale when Redis still fails. */
  catchUp(): Promise<void> {
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
    });
    return this.draining;
  }

  private async drain(): Promise<void> {
    try {
      let total = 0;
      for (;;) {
        const applied = await this.repository.drainBacklog(
          this.config.ingest.batchSize,
          this.applyOwed,
        );
        total += applied;
        if (applied === 0) break;
      }
      if (this.stale) {
        this.stale = false;
        this.metrics.onlineStale.set(0);
        // Events queued between the last drain and the flag flip are picked up here.
        total += await this.repository.drainBacklog(this.config.ingest.batchSize, this.applyOwed);
      }
      if (total > 0) this.logger.info({ events: total }, 'online state caught up');
    } catch (error) {
      this.markStale();
      this.logger.debug({ err: error }, 'online state catch-up deferred');
    }
  }

  private markStale(): void {
    this.stale = true;
    this.metrics.onlineStale.set(1);
  }

  /**
   * Rebuilds all online state from PostgreSQL: clears it, then replays every event stored so far.
   * Events stored after the start are applied by the running consumer as usual.
   */
  async rebuild(onProgress: (progress: RebuildProgress) => void): Promise<RebuildProgress> {
    await this.redis.ping();
    const { maxSeq, count } = await this.repository.eventWatermark();
    const cleared = await this.redis.clear();
    this.logger.info({ cleared, events: count, maxSeq }, 'rebuilding online state');
    let after = '0';
    let applied = 0;
    const page = Math.max(this.config.ingest.batchSize, 10_000);
    for (;;) {
      const events = await this.repository.eventsPage(after, maxSeq, page);
      if (events.length === 0) break;
      await this.redis.apply(events);
      applied += events.length;
      after = events[events.length - 1]?.seq ?? after;
      onProgress({ applied, total: count });
    }
    await this.repository.clearBacklogUpTo(maxSeq);
    return { applied, total: count };
  }
}
