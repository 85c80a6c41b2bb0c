import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { isDataRejection, ValidationError } from '../../common/errors';
import { EventRow, ItemRow, latestItemWrites, toEventRow, toItemRow } from './ingest.batch';
import { BatchControl, OutgoingMessage, SourceBatch } from './ingest-kafka.repository';
import { BatchOutcome, Entry, IngestPipeline, messageOf } from './ingest.pipeline';
import { IngestRepository, ItemUpsertCounts, StoredBatch } from './ingest.repository';
import {
  aheadOfTime,
  catalogItemSchema,
  decode,
  userEventSchema,
  validate,
} from './ingest.schemas';
import { OnlineStateService } from './online-state.service';

export { DLQ_HEADERS } from './ingest.pipeline';
export type { BatchOutcome } from './ingest.pipeline';

export const TOPICS = {
  events: 'user.events',
  items: 'catalog.items',
  eventsDlq: 'user.events.dlq',
  itemsDlq: 'catalog.items.dlq',
} as const;

/** Most items one `upsertItems` call stores (one transaction); bulk loads go through Kafka. */
export const MAX_UPSERT_ITEMS = 1000;

/** Validates and stores batches from Kafka (and item backfills from GraphQL). */
@Injectable()
export class IngestService {
  constructor(
    private readonly repository: IngestRepository,
    private readonly pipeline: IngestPipeline,
    private readonly onlineState: OnlineStateService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * One `user.events` batch: malformed messages to the DLQ, the rest in one transaction, then
   * the newly stored ones to the online state. Resolves only once everything is durable.
   */
  async handleEvents(batch: SourceBatch, control: BatchControl): Promise<BatchOutcome> {
    const timer = this.pipeline.metrics.batchDuration.startTimer({ topic: TOPICS.events });
    const entries: Entry<EventRow>[] = [];
    const dead: OutgoingMessage[] = [];
    for (const message of batch.messages) {
      const decoded = decode(userEventSchema, message.value, this.config.ingest.maxValueBytes);
      const rejection = decoded.ok
        ? this.pipeline.early(message, { timestamp: decoded.value.timestamp })
        : decoded.rejection;
      if (rejection !== undefined) dead.push(this.pipeline.deadLetter(batch, message, rejection));
      else if (decoded.ok) entries.push({ row: toEventRow(decoded.value), message });
    }
    await this.pipeline.publishDeadLetters(TOPICS.eventsDlq, dead, control);
    const { stored, refused } = await this.pipeline.storeIsolating(
      'events insert',
      entries,
      (rows) => this.repository.insertEvents(rows),
      control,
    );
    await this.pipeline.publishDeadLetters(
      TOPICS.eventsDlq,
      this.pipeline.refusedLetters(batch, refused),
      control,
    );
    for (const part of stored) await this.onlineState.apply(part);
    const storedCount = stored.reduce((sum, part: StoredBatch) => sum + part.events.length, 0);
    const outcome = {
      stored: storedCount,
      duplicates: entries.length - refused.length - storedCount,
      deadLettered: dead.length + refused.length,
    };
    this.pipeline.count(TOPICS.events, outcome);
    timer();
    return outcome;
  }

  /** One `catalog.items` batch: the newest write per item wins, in one transaction. */
  async handleItems(batch: SourceBatch, control: BatchControl): Promise<BatchOutcome> {
    const timer = this.pipeline.metrics.batchDuration.startTimer({ topic: TOPICS.items });
    const entries: Entry<ItemRow>[] = [];
    const dead: OutgoingMessage[] = [];
    for (const message of batch.messages) {
      const decoded = decode(catalogItemSchema, message.value, this.config.ingest.maxValueBytes);
      const rejection = decoded.ok
        ? this.pipeline.early(message, {
            updatedAt: decoded.value.updatedAt,
            createdAt: decoded.value.createdAt,
          })
        : decoded.rejection;
      if (rejection !== undefined) dead.push(this.pipeline.deadLetter(batch, message, rejection));
      else if (decoded.ok) {
        entries.push({
          row: toItemRow(decoded.value, new Date(Number(message.timestamp))),
          message,
        });
      }
    }
    await this.pipeline.publishDeadLetters(TOPICS.itemsDlq, dead, control);
    const latest = new Set(latestItemWrites(entries.map((entry) => entry.row)));
    const writes = entries.filter((entry) => latest.has(entry.row));
    const { stored, refused } = await this.pipeline.storeIsolating(
      'items upsert',
      writes,
      (items) => this.repository.upsertItems(items),
      control,
    );
    await this.pipeline.publishDeadLetters(
      TOPICS.itemsDlq,
      this.pipeline.refusedLetters(batch, refused),
      control,
    );
    const written = stored.reduce((sum, counts) => sum + counts.inserted + counts.updated, 0);
    const outcome = {
      stored: written,
      duplicates: entries.length - refused.length - written,
      deadLettered: dead.length + refused.length,
    };
    this.pipeline.count(TOPICS.items, outcome);
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
}
