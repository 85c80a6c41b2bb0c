import { setTimeout as sleep } from 'node:timers/promises';
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
import { waitAtMost } from '../../common/timeout';
import type { Logger } from '../../common/logger';
import type { Gauge } from 'prom-client';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { BatchHandler, ConsumerHandle, IngestKafkaRepository } from './ingest-kafka.repository';
import { IngestPipeline } from './ingest.pipeline';
import { IngestService, TOPICS } from './ingest.service';
import { OnlineStateService } from './online-state.service';

const START_RETRY_MS = 5000;
/** How often each started consumer's lag is read from the broker. */
const LAG_POLL_MS = 15_000;

/**
 * Consumer groups started in the background: a broker or topic that is not there yet must not
 * keep the process from serving health and metrics, so each start is retried until it succeeds or
 * `stop` is called. Shared by every module whose topic the ingest role consumes.
 */
export class BackgroundConsumers {
  private readonly handles: ConsumerHandle[] = [];
  private readonly starting: Promise<void>[] = [];
  private readonly started: { topic: string; groupId: string }[] = [];
  private stopped = false;
  /** Ends the wait between start attempts at once when `stop` is called. */
  private readonly stopping = new AbortController();
  private readonly lag: Gauge<'topic' | 'partition'>;
  private readonly running: Gauge<'topic'>;
  private readonly lagTimer: NodeJS.Timeout;
  private lagRead: Promise<void> | undefined;

  constructor(
    private readonly kafka: IngestKafkaRepository,
    private readonly logger: Logger,
    metrics: Metrics,
  ) {
    this.lag = metrics.labelledGauge(
      'ingest_consumer_lag_messages',
      'Messages of a topic partition not yet committed by its consumer group (read from the broker every 15 s)',
      ['topic', 'partition'],
    );
    this.running = metrics.labelledGauge(
      'ingest_consumer_running',
      'Whether this process consumes the topic (1), or has not started or lost its consumer (0: the broker or the topic missing, or an error kafkajs does not restart after)',
      ['topic'],
    );
    this.lagTimer = setInterval(() => {
      this.readLagOnce();
    }, LAG_POLL_MS);
    this.lagTimer.unref();
  }

  /** Starts consuming `topic` (unprefixed) in group `groupId`; returns at once. */
  start(
    topic: string,
    groupId: string,
    concurrency: number,
    handler: (...args: Parameters<BatchHandler>) => Promise<unknown>,
  ): void {
    this.running.set({ topic }, 0);
    this.starting.push(this.startRetrying(topic, groupId, concurrency, handler));
  }

  /**
   * Ends the start attempts, then disconnects every started consumer, waiting at most `withinMs`
   * for both: a broker that does not answer holds a start attempt, and kafkajs's leave of the
   * group, for their whole request timeouts, and a shutdown past its grace period exits with an
   * error. Not waiting loses nothing: offsets are committed only after their events are stored,
   * and the group drops the member when its session expires.
   */
  async stop(withinMs: number): Promise<void> {
    this.stopped = true;
    clearInterval(this.lagTimer);
    this.stopping.abort();
    const stopping = Promise.all(this.starting).then(() =>
      Promise.allSettled([...this.handles.map((handle) => handle.stop()), this.lagRead]),
    );
    await waitAtMost(stopping, withinMs, 'stopping the Kafka consumers', this.logger);
  }

  /** One read at a time: a broker that does not answer holds each for its retries. */
  private readLagOnce(): void {
    this.lagRead ??= this.readLag().finally(() => {
      this.lagRead = undefined;
    });
  }

  /** Best effort: a broker that does not answer leaves the last values (and shows in health). */
  private async readLag(): Promise<void> {
    for (const { topic, groupId } of this.started) {
      if (this.stopped) return;
      try {
        for (const [partition, lag] of await this.kafka.consumerLag(groupId, topic)) {
          this.lag.set({ topic, partition: String(partition) }, lag);
        }
      } catch (error) {
        this.logger.warn({ err: error, topic }, 'cannot read consumer lag');
      }
    }
  }

  /**
   * Starts the consumer, retrying every START_RETRY_MS until it starts or `stop` is called; a
   * consumer that kafkajs stopped for good (an error it does not restart after, such as a
   * TypeError in a handler) is replaced the same way, so one bad moment never ends consumption.
   */
  private async startRetrying(
    topic: string,
    groupId: string,
    concurrency: number,
    handler: (...args: Parameters<BatchHandler>) => Promise<unknown>,
  ): Promise<void> {
    const replace = (error: Error) => {
      this.running.set({ topic }, 0);
      this.logger.error(
        { err: error, topic, groupId },
        `consumer stopped by an error kafkajs does not restart after; a new one starts in ${START_RETRY_MS} ms`,
      );
      this.starting.push(
        this.pause().then(() => this.startRetrying(topic, groupId, concurrency, handler)),
      );
    };
    while (!this.stopped) {
      try {
        const handle = await this.kafka.startConsumer(
          { topic, groupId, concurrency },
          async (batch, control) => {
            await handler(batch, control);
          },
          replace,
        );
        if (this.stopping.signal.aborted) {
          // Started after `stop` gave up waiting for it.
          await handle.stop();
          return;
        }
        this.handles.push(handle);
        if (!this.started.some((entry) => entry.topic === topic)) {
          this.started.push({ topic, groupId });
        }
        this.running.set({ topic }, 1);
        this.logger.info({ topic, groupId }, 'consuming');
        return;
      } catch (error) {
        if (this.stopping.signal.aborted) return;
        this.logger.error({ err: error, topic }, 'consumer failed to start, retrying');
        await this.pause();
      }
    }
  }

  /** START_RETRY_MS, or less when `stop` is called meanwhile. */
  private pause(): Promise<void> {
    return sleep(START_RETRY_MS, undefined, { signal: this.stopping.signal }).catch(
      () => undefined,
    );
  }
}

/** The ingest role's edge: the two consumer groups and the online-state catch-up timer. */
@Injectable()
export class IngestConsumer
  implements OnApplicationBootstrap, OnModuleDestroy, BeforeApplicationShutdown
{
  private readonly consumers: BackgroundConsumers;
  private timer: NodeJS.Timeout | undefined;
  private readonly shutdown = new ShutdownStep(async () => {
    clearInterval(this.timer);
    await this.consumers.stop(this.deadline.within());
  });

  constructor(
    kafka: IngestKafkaRepository,
    private readonly ingest: IngestService,
    private readonly pipeline: IngestPipeline,
    private readonly onlineState: OnlineStateService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
    private readonly deadline: ShutdownDeadline,
  ) {
    this.consumers = new BackgroundConsumers(
      kafka,
      logger.child({ component: 'ingest-consumer' }),
      metrics,
    );
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.onlineState.catchUp();
    this.timer = setInterval(() => {
      void this.onlineState.catchUp();
    }, this.config.online.catchUpIntervalMs);
    this.consumers.start(
      TOPICS.events,
      this.config.ingest.eventsGroupId,
      this.config.ingest.partitionsConcurrency,
      (batch, control) =>
        this.pipeline.handleIsolating(
          { source: TOPICS.events, deadLetters: TOPICS.eventsDlq },
          batch,
          control,
          (part) => this.ingest.handleEvents(part, control),
        ),
    );
    this.consumers.start(TOPICS.items, this.config.ingest.itemsGroupId, 1, (batch, control) =>
      this.pipeline.handleIsolating(
        { source: TOPICS.items, deadLetters: TOPICS.itemsDlq },
        batch,
        control,
        (part) => this.ingest.handleItems(part, control),
      ),
    );
  }

  onModuleDestroy(): void {
    void this.shutdown.begin();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.shutdown.begin();
  }
}
