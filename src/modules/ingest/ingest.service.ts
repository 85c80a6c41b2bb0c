import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import { ValidationError } from '../../common/errors';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { EventRow, ItemRow, latestItemWrites, toEventRow, toItemRow } from './ingest.batch';
import {
  BatchControl,
  IngestKafkaRepository,
  OutgoingMessage,
  SourceBatch,
  SourceMessage,
} from './ingest-kafka.repository';
import { IngestMetrics } from './ingest.metrics';
import { IngestRepository, ItemUpsertCounts } from './ingest.repository';
import { retrying } from './ingest.retry';
import { catalogItemSchema, decode, Rejection, userEventSchema, validate } from './ingest.schemas';
import { OnlineStateService } from './online-state.service';

export const TOPICS = {
  events: 'user.events',
  items: 'catalog.items',
  eventsDlq: 'user.events.dlq',
  itemsDlq: 'catalog.items.dlq',
} as const;

/** Dead-letter headers (the value and key are the original bytes). */
export const DLQ_HEADERS = {
  error: 'dlq-error',
  field: 'dlq-error-field',
  reason: 'dlq-error-reason',
  topic: 'dlq-source-topic',
  partition: 'dlq-source-partition',
  offset: 'dlq-source-offset',
  timestamp: 'dlq-source-timestamp',
  /** Set when the value was cut to INGEST_MAX_VALUE_BYTES: its original size in bytes. */
  valueBytes: 'dlq-value-bytes',
} as const;

/** Most items one `upsertItems` call stores (one transaction); bulk loads go through Kafka. */
export const MAX_UPSERT_ITEMS = 1000;

export interface BatchOutcome {
  readonly stored: number;
  readonly duplicates: number;
  readonly deadLettered: number;
}

/** Validates and stores batches from Kafka (and item backfills from GraphQL). */
@Injectable()
export class IngestService {
  private readonly logger: Logger;
  private readonly metrics: IngestMetrics;

  constructor(
    private readonly repository: IngestRepository,
    private readonly kafka: IngestKafkaRepository,
    private readonly onlineState: OnlineStateService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
  ) {
    this.logger = logger.child({ component: 'ingest' });
    this.metrics = new IngestMetrics(metrics);
  }

  /**
   * One `user.events` batch: malformed messages to the DLQ, the rest in one transaction, then
   * the newly stored ones to the online state. Resolves only once everything is durable.
   */
  private get retryPolicy(): { initialMs: number; maxMs: number } {
    return { initialMs: this.config.ingest.retryInitialMs, maxMs: this.config.ingest.retryMaxMs };
  }

  async handleEvents(batch: SourceBatch, control: BatchControl): Promise<BatchOutcome> {
    const timer = this.metrics.batchDuration.startTimer({ topic: TOPICS.events });
    const rows: EventRow[] = [];
    const dead: OutgoingMessage[] = [];
    for (const message of batch.messages) {
      const decoded = decode(userEventSchema, message.value, this.config.ingest.maxValueBytes);
      if (decoded.ok) rows.push(toEventRow(decoded.value));
      else dead.push(this.deadLetter(batch, message, decoded.rejection));
    }
    await retrying(
      'dead-letter publish',
      () => this.kafka.produce(TOPICS.eventsDlq, dead),
      control,
      this.retryPolicy,
      this.logger,
    );
    const stored = await retrying(
      'events insert',
      () => this.repository.insertEvents(rows),
      control,
      this.retryPolicy,
      this.logger,
    );
    await this.onlineState.apply(stored);
    const outcome = {
      stored: stored.events.length,
      duplicates: rows.length - stored.events.length,
      deadLettered: dead.length,
    };
    this.count(TOPICS.events, outcome);
    timer();
    return outcome;
  }

  /** One `catalog.items` batch: the newest write per item wins, in one transaction. */
  async handleItems(batch: SourceBatch, control: BatchControl): Promise<BatchOutcome> {
    const timer = this.metrics.batchDuration.startTimer({ topic: TOPICS.items });
    const rows: ItemRow[] = [];
    const dead: OutgoingMessage[] = [];
    for (const message of batch.messages) {
      const decoded = decode(catalogItemSchema, message.value, this.config.ingest.maxValueBytes);
      if (decoded.ok) rows.push(toItemRow(decoded.value, new Date(Number(message.timestamp))));
      else dead.push(this.deadLetter(batch, message, decoded.rejection));
    }
    await retrying(
      'dead-letter publish',
      () => this.kafka.produce(TOPICS.itemsDlq, dead),
      control,
      this.retryPolicy,
      this.logger,
    );
    const writes = latestItemWrites(rows);
    const counts = await retrying(
      'items upsert',
      () => this.repository.upsertItems(writes),
      control,
      this.retryPolicy,
      this.logger,
    );
    const outcome = {
      stored: counts.inserted + counts.updated,
      duplicates: rows.length - counts.inserted - counts.updated,
      deadLettered: dead.length,
    };
    this.count(TOPICS.items, outcome);
    timer();
    return outcome;
  }

  /** Item backfill without Kafka: all items valid or none stored; the error names the field. */
  async upsertItems(inputs: readonly unknown[]): Promise<ItemUpsertCounts & { received: number }> {
    if (inputs.length > MAX_UPSERT_ITEMS) {
      throw new ValidationError(
        'items',
        `at most ${MAX_UPSERT_ITEMS} items per call (got ${inputs.length}); publish more to catalog.items`,
      );
    }
    const now = new Date();
    const rows = inputs.map((input, index) => {
      const decoded = validate(catalogItemSchema, input);
      if (!decoded.ok) {
        throw new ValidationError(
          `items[${index}].${decoded.rejection.field}`,
          decoded.rejection.reason,
        );
      }
      return toItemRow(decoded.value, now);
    });
    const counts = await this.repository.upsertItems(latestItemWrites(rows));
    return { received: inputs.length, ...counts };
  }

  private deadLetter(
    batch: SourceBatch,
    message: SourceMessage,
    rejection: Rejection,
  ): OutgoingMessage {
    this.logger.debug(
      { topic: batch.topic, partition: batch.partition, offset: message.offset, ...rejection },
      'message dead-lettered',
    );
    // An oversized value is cut to the limit: the dead-letter topic may accept less than the source
    // (a refused publish would hold the partition forever); the source offset locates the original.
    const max = this.config.ingest.maxValueBytes;
    const cut = message.value !== null && message.value.length > max;
    return {
      key: message.key,
      value: cut ? message.value.subarray(0, max) : message.value,
      headers: {
        ...message.headers,
        ...(cut ? { [DLQ_HEADERS.valueBytes]: String(message.value.length) } : {}),
        [DLQ_HEADERS.error]: `${rejection.field}: ${rejection.reason}`,
        [DLQ_HEADERS.field]: rejection.field,
        [DLQ_HEADERS.reason]: rejection.reason,
        [DLQ_HEADERS.topic]: batch.topic,
        [DLQ_HEADERS.partition]: String(batch.partition),
        [DLQ_HEADERS.offset]: message.offset,
        [DLQ_HEADERS.timestamp]: message.timestamp,
      },
    };
  }

  private count(topic: string, outcome: BatchOutcome): void {
    this.metrics.messages.inc({ topic, outcome: 'stored' }, outcome.stored);
    if (outcome.duplicates > 0) {
      this.metrics.messages.inc({ topic, outcome: 'duplicate' }, outcome.duplicates);
    }
    if (outcome.deadLettered > 0) {
      this.metrics.messages.inc({ topic, outcome: 'dead_lettered' }, outcome.deadLettered);
      this.logger.warn(
        { topic, deadLettered: outcome.deadLettered },
        'malformed messages sent to the dead-letter topic',
      );
    }
  }
}
