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
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { BackgroundConsumers } from '../ingest/ingest.consumer';
import {
  BatchControl,
  IngestKafkaRepository,
  OutgoingMessage,
  SourceBatch,
} from '../ingest/ingest-kafka.repository';
import { BatchOutcome, Entry, IngestPipeline } from '../ingest/ingest.pipeline';
import { DAY_MS, dayOf } from '../../common/daily-partitions';
import { ServedLogRepository } from './served-log.repository';
import { decodeServedSlate, SERVED_LOG_TOPICS, ServedSlateRow } from './served-slate.codec';

/** How often the ingest role creates the coming days' partitions and drops expired ones. */
const MAINTENANCE_INTERVAL_MS = 3_600_000;

/**
 * The ingest role's side of the served-slate log: consumes `rank.served` like the other topics
 * (malformed messages to `rank.served.dlq` with the reason, one statement per chunk, offsets
 * committed after it, redeliveries skipped by the primary key) and keeps the table's partitions:
 * today's and tomorrow's created ahead, those past SERVED_LOG_RETENTION_DAYS dropped, hourly.
 */
@Injectable()
export class ServedSlateConsumer
  implements OnApplicationBootstrap, OnModuleDestroy, BeforeApplicationShutdown
{
  private readonly logger: Logger;
  private readonly consumers: BackgroundConsumers;
  private readonly retentionMs: number;
  private timer: NodeJS.Timeout | undefined;
  private maintaining: Promise<void> = Promise.resolve();
  private readonly shutdown = new ShutdownStep(async () => {
    clearInterval(this.timer);
    // A partition upkeep PostgreSQL does not answer is left to end with the process.
    await Promise.all([
      this.consumers.stop(this.deadline.within()),
      this.deadline.wait(this.maintaining, 'the served-slate partition upkeep', this.logger),
    ]);
  });

  constructor(
    kafka: IngestKafkaRepository,
    private readonly pipeline: IngestPipeline,
    private readonly repository: ServedLogRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
    private readonly deadline: ShutdownDeadline,
  ) {
    this.logger = logger.child({ component: 'served-slate-consumer' });
    this.consumers = new BackgroundConsumers(kafka, this.logger, metrics);
    this.retentionMs = config.servedLog.retentionDays * DAY_MS;
  }

  onApplicationBootstrap(): void {
    this.maintaining = this.maintain();
    this.timer = setInterval(() => {
      this.maintaining = this.maintain();
    }, MAINTENANCE_INTERVAL_MS);
    this.consumers.start(
      SERVED_LOG_TOPICS.slates,
      this.config.ingest.servedGroupId,
      this.config.ingest.partitionsConcurrency,
      (batch, control) =>
        this.pipeline.handleIsolating(
          { source: SERVED_LOG_TOPICS.slates, deadLetters: SERVED_LOG_TOPICS.deadLetters },
          batch,
          control,
          (part) => this.handleBatch(part, control),
        ),
    );
  }

  onModuleDestroy(): void {
    void this.shutdown.begin();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.shutdown.begin();
  }

  /**
   * One chunk of `rank.served`: malformed slates dead-lettered, slates past the retention skipped
   * (their partition is dropped, or about to be), the rest inserted. Resolves once durable.
   */
  async handleBatch(batch: SourceBatch, control: BatchControl): Promise<BatchOutcome> {
    const timer = this.pipeline.metrics.batchDuration.startTimer({
      topic: SERVED_LOG_TOPICS.slates,
    });
    const entries: Entry<ServedSlateRow>[] = [];
    const dead: OutgoingMessage[] = [];
    const oldestKept = Date.now() - this.retentionMs;
    let expired = 0;
    for (const message of batch.messages) {
      const decoded = decodeServedSlate(message.value);
      if (!decoded.ok) {
        dead.push(this.pipeline.deadLetter(batch, message, decoded.rejection));
        continue;
      }
      const early = this.pipeline.early(message, { servedAt: decoded.value.servedAt });
      if (early !== undefined) dead.push(this.pipeline.deadLetter(batch, message, early));
      else if (decoded.value.servedAt.getTime() < oldestKept) expired += 1;
      else entries.push({ row: decoded.value, message });
    }
    await this.pipeline.publishDeadLetters(SERVED_LOG_TOPICS.deadLetters, dead, control);
    const { stored, refused } = await this.pipeline.storeIsolating(
      'served slates insert',
      entries,
      (rows) => this.repository.insertSlates(rows),
      control,
    );
    await this.pipeline.publishDeadLetters(
      SERVED_LOG_TOPICS.deadLetters,
      this.pipeline.refusedLetters(batch, refused),
      control,
    );
    const storedCount = stored.reduce((sum, count) => sum + count, 0);
    const outcome: BatchOutcome = {
      stored: storedCount,
      duplicates: entries.length - refused.length - storedCount,
      deadLettered: dead.length + refused.length,
      expired,
    };
    this.pipeline.count(SERVED_LOG_TOPICS.slates, outcome);
    timer();
    return outcome;
  }

  /** Creates today's and tomorrow's partitions and drops expired ones; failures wait an hour. */
  async maintain(): Promise<void> {
    const now = Date.now();
    try {
      await this.repository.ensurePartitions([dayOf(new Date(now)), dayOf(new Date(now + DAY_MS))]);
      const dropped = await this.repository.dropPartitionsBefore(new Date(now - this.retentionMs));
      if (dropped.length > 0) {
        this.logger.info(
          { dropped, retentionDays: this.config.servedLog.retentionDays },
          'dropped expired served-slate partitions',
        );
      }
    } catch (error) {
      this.logger.warn(
        { err: error },
        'served-slate partition maintenance failed; next in an hour',
      );
    }
  }
}
