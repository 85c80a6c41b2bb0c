import { Inject, Injectable, Optional } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import { isDataRejection } from '../../common/errors';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import {
  BatchControl,
  ConsumerStopping,
  IngestKafkaRepository,
  OutgoingMessage,
  SourceBatch,
  SourceMessage,
} from './ingest-kafka.repository';
import { INGEST_FAULTS } from './ingest.faults';
import type { IngestFaults } from './ingest.faults';
import { IngestMetrics } from './ingest.metrics';
import { retrying } from './ingest.retry';
import { aheadOfTime, Rejection } from './ingest.schemas';

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

/** Messages that fail alone, with none passing yet, after which a chunk's search gives up. */
const MAX_FAILED_BEFORE_ONE_PASSES = 8;

/** A row to store and the Kafka message it came from (dead-lettered if the database refuses it). */
export interface Entry<R> {
  readonly row: R;
  readonly message: SourceMessage;
}

export interface Isolated<T> {
  readonly stored: T[];
  readonly refused: { readonly message: SourceMessage; readonly reason: string }[];
}

export interface BatchOutcome {
  readonly stored: number;
  readonly duplicates: number;
  readonly deadLettered: number;
  /** Valid messages not stored because they are older than what the table keeps. */
  readonly expired?: number;
}

export function messageOf(error: unknown): string {
  const { message } = error as { message?: unknown };
  return typeof message === 'string' ? message : String(error);
}

/**
 * The steps every consumed topic shares, whichever module owns its table: dead letters (built and
 * published), clock-skew checks against the broker time, storing with retries while a dependency
 * is down and isolating the rows PostgreSQL refuses, and the per-topic metrics.
 */
@Injectable()
export class IngestPipeline {
  private readonly logger: Logger;
  readonly metrics: IngestMetrics;

  constructor(
    private readonly kafka: IngestKafkaRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
    @Optional() @Inject(INGEST_FAULTS) private readonly faults?: IngestFaults,
  ) {
    this.logger = logger.child({ component: 'ingest' });
    this.metrics = new IngestMetrics(metrics);
  }

  private get retryPolicy(): { initialMs: number; maxMs: number } {
    return { initialMs: this.config.ingest.retryInitialMs, maxMs: this.config.ingest.retryMaxMs };
  }

  /** Publishes dead letters, retried (holding the batch) until the broker takes them. */
  publishDeadLetters(
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
   * Runs `handle` on a consumed chunk. When it fails with an error of its own (a bug: outages are
   * retried inside it and rows PostgreSQL refuses are isolated there), halves the chunk to find
   * the messages it fails on. If others of the chunk were handled, those messages go to
   * `topics.deadLetters` with the error, so that a message the service cannot handle never holds
   * its partition. If every message fails, the fault is the service's, not the data's: nothing is
   * dead-lettered and the first error goes on (the consumer is replaced and reads the chunk again).
   */
  async handleIsolating(
    topics: { readonly source: string; readonly deadLetters: string },
    batch: SourceBatch,
    control: BatchControl,
    handle: (part: SourceBatch) => Promise<unknown>,
  ): Promise<void> {
    const run = async (messages: readonly SourceMessage[]) => {
      const part = { ...batch, messages };
      await this.faults?.handling?.(part);
      await handle(part);
    };
    try {
      await run(batch.messages);
      return;
    } catch (error) {
      if (error instanceof ConsumerStopping || batch.messages.length === 1) throw error;
      this.logger.warn(
        {
          err: error,
          topic: batch.topic,
          partition: batch.partition,
          messages: batch.messages.length,
        },
        'handling a chunk failed; looking for the messages it fails on',
      );
      const failed: { message: SourceMessage; error: unknown }[] = [];
      let passed = 0;
      /** `messages` failed together with `cause`: tries each half alone. */
      const search = async (messages: readonly SourceMessage[], cause: unknown): Promise<void> => {
        if (messages.length === 1) {
          failed.push({ message: messages[0], error: cause });
          return;
        }
        const half = Math.ceil(messages.length / 2);
        for (const part of [messages.slice(0, half), messages.slice(half)]) {
          if (!control.isRunning()) throw new ConsumerStopping();
          // Keeps the partition through a long search (kafkajs sends at most one per interval).
          await control.heartbeat();
          // So many failing alone and none passing: a fault of the service; stop searching.
          if (passed === 0 && failed.length >= MAX_FAILED_BEFORE_ONE_PASSES) throw error;
          try {
            await run(part);
            passed += part.length;
          } catch (partError) {
            if (partError instanceof ConsumerStopping) throw partError;
            await search(part, partError);
          }
        }
      };
      await search(batch.messages, error);
      if (passed === 0) throw error;
      const letters = failed.map(({ message, error: cause }) => {
        this.logger.error(
          { err: cause, topic: batch.topic, partition: batch.partition, offset: message.offset },
          'the service fails on this message while others of its chunk pass; dead-lettered',
        );
        return this.deadLetter(batch, message, {
          field: 'value',
          reason: `the service failed on this message (others of its chunk were stored): ${messageOf(cause)}`,
        });
      });
      await this.publishDeadLetters(topics.deadLetters, letters, control);
      this.count(topics.source, { stored: 0, duplicates: 0, deadLettered: letters.length });
    }
  }

  /**
   * Stores the entries (retried while the database is unavailable). When PostgreSQL refuses the
   * data itself, halves the set until the refused entries are isolated; those are returned for the
   * DLQ and the rest is stored, so one bad row never holds its partition.
   */
  async storeIsolating<R, T>(
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

  /** Dead letters for the entries PostgreSQL refused. */
  refusedLetters(batch: SourceBatch, refused: Isolated<unknown>['refused']): OutgoingMessage[] {
    return refused.map(({ message, reason }) =>
      this.deadLetter(batch, message, { field: 'value', reason }),
    );
  }

  /** A producer time too far ahead of the broker's (or of now, when the broker's is later). */
  early(
    message: SourceMessage,
    times: Readonly<Record<string, Date | undefined>>,
  ): Rejection | undefined {
    const brokerMs = Number(message.timestamp);
    const referenceMs = Number.isFinite(brokerMs) ? Math.min(brokerMs, Date.now()) : Date.now();
    return aheadOfTime(times, referenceMs, this.config.ingest.maxClockSkewMs);
  }

  deadLetter(batch: SourceBatch, message: SourceMessage, rejection: Rejection): OutgoingMessage {
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

  /** Counts a batch's outcome under the unprefixed topic name. */
  count(topic: string, outcome: BatchOutcome): void {
    this.metrics.messages.inc({ topic, outcome: 'stored' }, outcome.stored);
    if (outcome.duplicates > 0) {
      this.metrics.messages.inc({ topic, outcome: 'duplicate' }, outcome.duplicates);
    }
    if (outcome.expired !== undefined && outcome.expired > 0) {
      this.metrics.messages.inc({ topic, outcome: 'expired' }, outcome.expired);
    }
    if (outcome.deadLettered > 0) {
      this.metrics.messages.inc({ topic, outcome: 'dead_lettered' }, outcome.deadLettered);
      this.logger.warn(
        { topic, deadLettered: outcome.deadLettered },
        'messages sent to the dead-letter topic (their dlq-error header says why)',
      );
    }
  }
}
