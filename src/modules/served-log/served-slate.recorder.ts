import { BeforeApplicationShutdown, Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import type { Counter } from 'prom-client';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import { ShutdownDeadline, ShutdownStep } from '../../common/shutdown-deadline';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { PackedMessageQueue, PackedMessages } from '../../infra/packed-messages';
import { SERVED_SLATE_PUBLISHER, ServedSlatePublisher } from './served-log-kafka.repository';
import { encodeServedSlate, MAX_SERVED_SLATE_BYTES } from './served-slate.codec';
import type { ServedSlate } from './served-slate';

/** What became of a recorded slate (`served_log_slates_total{outcome}`). */
export const SERVED_SLATE_OUTCOMES = [
  'sent',
  /** The buffer was full: Kafka slower than the answers, or down. */
  'dropped_buffer_full',
  /** The send of its batch failed; batches are not retried. */
  'dropped_send_failed',
  /** Encoded, it exceeded MAX_SERVED_SLATE_BYTES. */
  'dropped_too_large',
  /** Recorded during shutdown, or still unsent when the final flush ran out of time. */
  'dropped_shutdown',
] as const;
export type ServedSlateOutcome = (typeof SERVED_SLATE_OUTCOMES)[number];

type DroppedOutcome = Exclude<ServedSlateOutcome, 'sent'>;

const WARN_INTERVAL_MS = 10_000;
/**
 * Most bytes per Kafka send. kafkajs puts a request's messages for one partition into one record
 * batch, which the broker refuses above `message.max.bytes` (1 MiB by default): keeping the whole
 * request under that keeps every batch under it, whatever the partitioning.
 */
const MAX_SEND_BYTES = MAX_SERVED_SLATE_BYTES;
/** Longest the final flush at shutdown may take (and at most half the shutdown grace period). */
const SHUTDOWN_FLUSH_MS = 5000;

/**
 * Records every `rank`/`recommend` answer to `rank.served` without slowing the answer: `record`
 * encodes the slate at once into a bounded queue of packed bytes outside the JavaScript heap (a
 * queue of slate objects, kept until the flush, was most of what a `rank` left for the garbage
 * collector to promote: docs/performance.md); a timer (every SERVED_LOG_FLUSH_MS, or at once when
 * SERVED_LOG_BATCH slates wait) hands a batch to the producer thread, one send at a time. Nothing
 * waits for Kafka: when the queue is full further slates are dropped, a failed send drops its
 * batch, and both are counted (`served_log_slates_total`) and logged at most every 10 s.
 */
@Injectable()
export class ServedSlateRecorder implements OnModuleDestroy, BeforeApplicationShutdown {
  private readonly logger: Logger;
  private readonly settings: AppConfig['servedLog'];
  private readonly shutdownFlushMs: number;
  private readonly outcomes: Record<ServedSlateOutcome, Counter.Internal>;
  /** Recorded and not yet taken by a flush, oldest first: keyed by user id, encoded. */
  private readonly queue = new PackedMessageQueue();
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  /** The send in progress; at most one at a time. */
  private sending: Promise<void> | undefined;
  /** A flush came due while a send was in progress: flush as soon as it ends. */
  private due = false;
  private closed = false;
  private readonly droppedSinceWarning = new Map<DroppedOutcome, number>();
  private lastWarningAt = Number.NEGATIVE_INFINITY;
  /** Sends what is queued within a bound; later slates are dropped. */
  private readonly shutdown = new ShutdownStep(async () => {
    this.closed = true;
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    // Past the bound what is still queued is lost, counted and warned of below (the send in
    // flight ends with the Kafka client).
    await this.deadline.wait(
      this.drain(),
      'served-slate log flush',
      undefined,
      this.shutdownFlushMs,
    );
    const left = this.queue.count;
    this.queue.clear();
    if (left > 0) this.drop('dropped_shutdown', left);
    this.warnOfDrops(undefined, true);
  });

  constructor(
    @Inject(SERVED_SLATE_PUBLISHER) private readonly publisher: ServedSlatePublisher,
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
    private readonly deadline: ShutdownDeadline,
  ) {
    this.logger = logger.child({ component: 'served-slate-recorder' });
    this.settings = config.servedLog;
    this.shutdownFlushMs = Math.min(SHUTDOWN_FLUSH_MS, Math.floor(config.shutdownTimeoutMs / 2));
    const slates = metrics.counter(
      'served_log_slates_total',
      'Served slates recorded for rank.served, by outcome (sent, or why dropped)',
      ['outcome'],
    );
    this.outcomes = Object.fromEntries(
      SERVED_SLATE_OUTCOMES.map((outcome) => [outcome, slates.labels(outcome)]),
    ) as Record<ServedSlateOutcome, Counter.Internal>;
    metrics.gauge(
      'served_log_buffer_slates',
      'Served slates waiting in this replica for their send to rank.served',
      () => this.queue.count,
    );
  }

  /** Queues one answer's slate. Synchronous, never throws, never waits; see ServedSlate. */
  record(slate: ServedSlate): void {
    if (!this.settings.enabled) return;
    if (this.closed) {
      this.drop('dropped_shutdown', 1);
      return;
    }
    if (this.queue.count >= this.settings.bufferSlates) {
      this.drop('dropped_buffer_full', 1);
      return;
    }
    const value = encodeServedSlate(slate, this.settings.depth);
    if (Buffer.byteLength(value) > MAX_SERVED_SLATE_BYTES) {
      this.drop('dropped_too_large', 1);
      return;
    }
    this.queue.append(slate.userId, value);
    if (this.queue.count >= this.settings.batchSlates) this.flushSoon();
    else this.timer ??= setTimeout(this.onDeadline, this.settings.flushMs).unref();
  }

  /**
   * Items worth handing over per slate: SERVED_LOG_DEPTH (more are cut), or 0 while the log is off,
   * so a caller can skip building the slate at all.
   */
  get depth(): number {
    return this.settings.enabled ? this.settings.depth : 0;
  }

  onModuleDestroy(): void {
    void this.shutdown.begin();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.shutdown.begin();
  }

  /** Flushes until nothing is queued or in flight. */
  async drain(): Promise<void> {
    while (this.sending !== undefined || this.queue.count > 0) {
      if (this.sending === undefined) this.flush();
      await this.sending;
    }
  }

  private readonly onDeadline = (): void => {
    this.timer = undefined;
    this.flush();
  };

  private flushSoon(): void {
    this.immediate ??= setImmediate(() => {
      this.immediate = undefined;
      this.flush();
    }).unref();
  }

  /** Takes up to a batch and starts its send; with a send in progress, only notes it is due. */
  private flush(): void {
    if (this.sending !== undefined) {
      this.due = true;
      return;
    }
    this.due = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.count === 0) return;
    const batch = this.queue.take(this.settings.batchSlates, MAX_SEND_BYTES);
    this.sending = this.send(batch).finally(() => {
      this.sending = undefined;
      this.afterSend();
    });
  }

  private afterSend(): void {
    if (this.closed || this.queue.count === 0) return;
    if (this.due || this.queue.count >= this.settings.batchSlates) this.flushSoon();
    else this.timer ??= setTimeout(this.onDeadline, this.settings.flushMs).unref();
  }

  /** Publishes one batch; never rejects. */
  private async send(batch: PackedMessages): Promise<void> {
    try {
      await this.publisher.publish(batch);
      this.outcomes.sent.inc(batch.count);
      this.warnOfDrops(undefined);
    } catch (error) {
      this.drop('dropped_send_failed', batch.count);
      this.warnOfDrops(error);
    }
  }

  private drop(outcome: DroppedOutcome, count: number): void {
    this.outcomes[outcome].inc(count);
    this.droppedSinceWarning.set(outcome, (this.droppedSinceWarning.get(outcome) ?? 0) + count);
  }

  /** One warning per WARN_INTERVAL_MS at most, with the drops since the last one. */
  private warnOfDrops(error: unknown, force = false): void {
    if (this.droppedSinceWarning.size === 0) return;
    const now = performance.now();
    if (!force && now - this.lastWarningAt < WARN_INTERVAL_MS) return;
    this.lastWarningAt = now;
    const dropped = Object.fromEntries(this.droppedSinceWarning);
    this.droppedSinceWarning.clear();
    this.logger.warn(
      { err: error, dropped, queued: this.queue.count },
      'served slates dropped (rank.served is best effort; see served_log_slates_total)',
    );
  }
}
