import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import { isDataRejection, ValidationError } from '../../common/errors';
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
import { IngestRepository, ItemUpsertCounts, StoredBatch } from './ingest.repository';
import { retrying } from './ingest.retry';
import {
  aheadOfTime,
  catalogItemSchema,
  decode,
  Rejection,
  userEventSchema,
  validate,
} from './ingest.schemas';
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

/** A row to store and the Kafka message it came from (dead-lettered if the database refuses it). */
interface Entry<R> {
  readonly row: R;
  readonly message: SourceMessage;
}

interface Isolated<T> {
  readonly stored: T[];
  readonly refused: { readonly message: SourceMessage; readonly reason: string }[];
}

function messageOf(error: unknown): string {
  const { message } = error as { message?: unknown };
  return typeof message === 'string' ? message : String(error);
}

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

  private get retryPolicy(): { initialMs: number; maxMs: number } {
    return { initialMs: this.config.ingest.retryInitialMs, maxMs: this.config.ingest.retryMaxMs };
  }

  /**
   * One `user.events` batch: malformed messages to the DLQ, the rest in one transaction, then
   * the newly stored ones to the online state. Resolves only once everything is durable.
   */
  async handleEvents(batch: SourceBatch, control: BatchControl): Promise<BatchOutcome> {
    const timer = this.metrics.batchDuration.startTimer({ topic: TOPICS.events });
    const entries: Entry<EventRow>[] = [];
    const dead: OutgoingMessage[] = [];
    for (const message of batch.messages) {
      const decoded = decode(userEventSchema, message.value, this.config.ingest.maxValueBytes);
      const rejection = decoded.ok
        ? this.early(message, { timestamp: decoded.value.timestamp })
        : decoded.rejection;
      if (rejection !== undefined) dead.push(this.deadLetter(batch, message, rejection));
      else if (decoded.ok) entries.push({ row: toEventRow(decoded.value), message });
    }
    await this.publishDeadLetters(TOPICS.eventsDlq, dead, control);
    const { stored, refused } = await this.storeIsolating(
      'events insert',
      entries,
      (rows) => this.repository.insertEvents(rows),
      control,
    );
    await this.publishDeadLetters(TOPICS.eventsDlq, this.refusedLetters(batch, refused), control);
    for (const part of stored) await this.onlineState.apply(part);
    const storedCount = stored.reduce((sum, part: StoredBatch) => sum + part.events.length, 0);
    const outcome = {
      stored: storedCount,
      duplicates: entries.length - refused.length - storedCount,
      deadLettered: dead.length + refused.length,
    };
    this.count(TOPICS.events, outcome);
    timer();
    return outcome;
  }

  /** One `catalog.items` batch: the newest write per item wins, in one transaction. */
  async handleItems(batch: SourceBatch, control: BatchControl): Promise<BatchOutcome> {
    const timer = this.metrics.batchDuration.startTimer({ topic: TOPICS.items });
    const entries: Entry<ItemRow>[] = [];
    const dead: OutgoingMessage[] = [];
    for (const message of batch.messages) {
      const decoded = decode(catalogItemSchema, message.value, this.config.ingest.maxValueBytes);
      const rejection = decoded.ok
        ? this.early(message, {
            updatedAt: decoded.value.updatedAt,
            createdAt: decoded.value.createdAt,
          })
        : decoded.rejection;
      if (rejection !== undefined) dead.push(this.deadLetter(batch, message, rejection));
      else if (decoded.ok) {
        entries.push({
          row: toItemRow(decoded.value, new Date(Number(message.timestamp))),
          message,
        });
      }
    }
    await this.publishDeadLetters(TOPICS.itemsDlq, dead, control);
    const latest = new Set(latestItemWrites(entries.map((entry) => entry.row)));
    const writes = entries.filter((entry) => latest.has(entry.row));
    const { stored, refused } = await this.storeIsolating(
      'items upsert',
      writes,
      (items) => this.repository.upsertItems(items),
      control,
    );
    await this.publishDeadLetters(TOPICS.itemsDlq, this.refusedLetters(batch, refused), control);
    const written = stored.reduce((sum, counts) => sum + counts.inserted + counts.updated, 0);
    const outcome = {
      stored: written,
      duplicates: entries.length - refused.length - written,
      deadLettered: dead.length + refused.length,
    };
    this.count(TOPICS.items, outcome);
    timer();
    return outcome;
  }

  private publishDeadLetters(
    topic: string,
    letters: readonly OutgoingMessage[],
    control: BatchControl,
  ): Promise<void> {
    return retrying(
      'dead-letter publish',
      () => this.kafka.produce(topic, letters),
      control,
      this.retryPolicy,
      this.logger,
    );
  }

  /**
   * Stores the entries (retried while the database is unavailable). When PostgreSQL refuses the
   * data itself, halves the set until the refused entries are isolated; those are returned for the
   * DLQ and the rest is stored, so one bad row never holds its partition.
   */
  private async storeIsolating<R, T>(
    what: string,
    entries: readonly Entry<R>[],
    store: (rows: R[]) => Promise<T>,
    control: BatchControl,
  ): Promise<Isolated<T>> {
    try {
      const result = await retrying(
        what,
        () => store(entries.map((entry) => entry.row)),
        control,
        this.retryPolicy,
        this.logger,
      );
      return { stored: [result], refused: [] };
    } catch (error) {
      if (!isDataRejection(error)) throw error;
      if (entries.length === 1) {
        const reason = `refused by PostgreSQL: ${messageOf(error)}`;
        return { stored: [], refused: [{ message: entries[0].message, reason }] };
      }
      const half = Math.ceil(entries.length / 2);
      const first = await this.storeIsolating(what, entries.slice(0, half), store, control);
      const second = await this.storeIsolating(what, entries.slice(half), store, control);
      return {
        stored: [...first.stored, ...second.stored],
        refused: [...first.refused, ...second.refused],
      };
    }
  }

  private refusedLetters(batch: SourceBatch, refused: Isolated<unknown>['refused']) {
    return refused.map(({ message, reason }) =>
      this.deadLetter(batch, message, { field: 'value', reason }),
    );
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
      const rejection = decoded.ok
        ? aheadOfTime(
            { updatedAt: decoded.value.updatedAt, createdAt: decoded.value.createdAt },
            now.getTime(),
            this.config.ingest.maxClockSkewMs,
          )
        : decoded.rejection;
      const field = (name: string) => `items[${index}].${name}`;
      if (!decoded.ok)
        throw new ValidationError(field(decoded.rejection.field), decoded.rejection.reason);
      if (rejection !== undefined)
        throw new ValidationError(field(rejection.field), rejection.reason);
      return toItemRow(decoded.value, now);
    });
    try {
      const counts = await this.repository.upsertItems(latestItemWrites(rows));
      return { received: inputs.length, ...counts };
    } catch (error) {
      if (isDataRejection(error)) {
        throw new ValidationError('items', `refused by PostgreSQL: ${messageOf(error)}`);
      }
      throw error;
    }
  }

  /** A producer time too far ahead of the broker's (or of now, when the broker's is later). */
  private early(
    message: SourceMessage,
    times: Readonly<Record<string, Date | undefined>>,
  ): Rejection | undefined {
    const brokerMs = Number(message.timestamp);
    const referenceMs = Number.isFinite(brokerMs) ? Math.min(brokerMs, Date.now()) : Date.now();
    return aheadOfTime(times, referenceMs, this.config.ingest.maxClockSkewMs);
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
