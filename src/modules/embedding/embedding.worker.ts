import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import { ShutdownDeadline, ShutdownStep } from '../../common/shutdown-deadline';
import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import type { PgListener } from '../../infra/pg-listener';
import { LOGGER, PG_LISTENER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { HealthService } from '../health/health.service';
import { EmbeddingIndexer } from './embedding-indexer.service';
import { EMBED_PENDING_CHANNEL, EmbeddingRepository } from './embedding.repository';

const RETRY_INITIAL_MS = 1000;

/**
 * The ingest role's embedding loop. Woken by PostgreSQL notifications (the items triggers fire when
 * a statement leaves an item pending) and by a slow safety-net poll; each wake drains the pending
 * items batch by batch. Failures back off exponentially up to the poll interval.
 */
@Injectable()
export class EmbeddingWorker
  implements OnApplicationBootstrap, OnModuleDestroy, BeforeApplicationShutdown
{
  private readonly logger: Logger;
  private subscribed = false;
  /** Aborted by `stop`: the pass in progress stops between encoder calls. */
  private stopping = new AbortController();
  private poll: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private draining: Promise<void> | undefined;
  private wakeAgain = false;
  private stopped = true;
  private failures = 0;
  private lastError: unknown;
  /**
   * A batch waiting on a database that answers nothing would hold the shutdown until its query
   * times out; its items stay pending and are embedded by the next worker.
   */
  private readonly shutdown = new ShutdownStep(() =>
    this.deadline.wait(this.stop(), 'stopping the embedding worker', this.logger),
  );

  constructor(
    private readonly indexer: EmbeddingIndexer,
    private readonly repository: EmbeddingRepository,
    @Inject(PG_LISTENER) private readonly listener: Pick<PgListener, 'listen' | 'onReconnect'>,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    health: HealthService,
    metrics: Metrics,
    private readonly deadline: ShutdownDeadline,
  ) {
    this.logger = logger.child({ component: 'embedding-worker' });
    metrics.gauge(
      'embedding_backlog_items',
      'Catalog items waiting for their text vector (read from PostgreSQL at each scrape)',
      () => this.repository.countPending(),
    );
    health.register({
      name: 'embedding-worker',
      check: () =>
        this.failures === 0
          ? Promise.resolve()
          : Promise.reject(
              new Error(
                `embedding failing: ${this.lastError instanceof Error ? this.lastError.message : String(this.lastError)}`,
              ),
            ),
    });
  }

  onApplicationBootstrap(): void {
    this.start();
  }

  onModuleDestroy(): void {
    void this.shutdown.begin();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.shutdown.begin();
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.stopping = new AbortController();
    this.subscribe();
    this.poll = setInterval(() => {
      this.wake();
    }, this.config.embedding.pollIntervalMs);
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    clearInterval(this.poll);
    clearTimeout(this.retry);
    await this.draining;
  }

  /**
   * Wakes on each notification (the items triggers NOTIFY), and after the LISTEN connection comes
   * back (notifications meanwhile are lost). Once: a stopped worker's wakes do nothing.
   */
  private subscribe(): void {
    if (this.subscribed) return;
    this.subscribed = true;
    const wake = () => {
      this.wake();
    };
    this.listener.onReconnect(wake);
    this.listener.listen(EMBED_PENDING_CHANNEL, wake).catch((error: unknown) => {
      this.logger.warn({ err: error }, 'cannot LISTEN for items to embed yet; retrying');
    });
  }

  /** Drains pending items now (or right after the running drain). */
  wake(): void {
    if (this.stopped) return;
    if (this.draining) {
      this.wakeAgain = true;
      return;
    }
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      if (this.wakeAgain) {
        this.wakeAgain = false;
        this.wake();
      }
    });
  }

  /** Resolves once no drain is running or queued (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private async drain(): Promise<void> {
    try {
      while (!this.stopped) {
        const counts = await this.indexer.embedPending(
          this.config.embedding.workerBatch,
          this.stopping.signal,
        );
        // Another replica (or a backfill) holds the lock and drains; its notification or the poll
        // brings us back.
        if (counts === undefined || counts.items === 0) break;
        this.logger.info(counts, 'embedded pending items');
      }
      this.failures = 0;
      this.lastError = undefined;
    } catch (error) {
      this.failures++;
      this.lastError = error;
      const delay = Math.min(
        RETRY_INITIAL_MS * 2 ** (this.failures - 1),
        this.config.embedding.pollIntervalMs,
      );
      this.logger.error(
        { err: error, failures: this.failures, retryMs: delay },
        'embedding failed',
      );
      clearTimeout(this.retry);
      this.retry = setTimeout(() => {
        this.wake();
      }, delay);
    }
  }
}
