import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import type { Counter, Gauge } from 'prom-client';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import { ShutdownDeadline, ShutdownStep } from '../../common/shutdown-deadline';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { DAY_MS, dayOf } from '../../common/daily-partitions';
import { EventPartitionsRepository, eventsPartitionName } from './event-partitions.repository';

/** How often the ingest role keeps the partitions; creation runs days ahead, so a miss is cheap. */
const MAINTENANCE_INTERVAL_MS = 3_600_000;

/** What one round of maintenance did. */
export interface PartitionRound {
  readonly created: string[];
  /** Rows the new partitions took over from the default partition. */
  readonly moved: number;
  readonly dropped: string[];
  /** Default-partition rows deleted as past the retention. */
  readonly expired: number;
  /** Rows still in the default partition: days beyond the partitions ahead. */
  readonly waiting: number;
  /** Start of the oldest daily partition; null when there is none. */
  readonly oldest: Date | null;
}

/**
 * Keeps `events`' daily partitions (docs/operations/retention.md), in the ingest role at start and
 * hourly: today's and EVENTS_PARTITIONS_AHEAD_DAYS more created ahead; a day with rows waiting in
 * the default partition (a late event, maintenance that was behind) gets its partition and the
 * rows move in; with EVENTS_RETENTION_DAYS set, the partitions of days that ended longer ago are
 * dropped and the default partition's rows of those days deleted. Replicas take turns under an
 * advisory lock; a change that cannot get its table lock within 2 s waits for the next round.
 */
@Injectable()
export class EventPartitionsService
  implements OnApplicationBootstrap, OnModuleDestroy, BeforeApplicationShutdown
{
  private readonly logger: Logger;
  private readonly dropped: Counter;
  private readonly created: Counter;
  private readonly oldest: Gauge;
  private readonly waiting: Gauge;
  private timer: NodeJS.Timeout | undefined;
  private maintaining: Promise<unknown> = Promise.resolve();
  /** A round PostgreSQL does not answer is left to end with the process; the next one redoes it. */
  private readonly shutdown = new ShutdownStep(async () => {
    clearInterval(this.timer);
    await this.deadline.wait(this.maintaining, 'the events partition upkeep', this.logger);
  });

  constructor(
    private readonly repository: EventPartitionsRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
    private readonly deadline: ShutdownDeadline,
  ) {
    this.logger = logger.child({ component: 'event-partitions' });
    this.created = metrics.counter(
      'events_partitions_created_total',
      'Daily partitions of events created by this process',
    );
    this.dropped = metrics.counter(
      'events_partitions_dropped_total',
      'Daily partitions of events dropped past EVENTS_RETENTION_DAYS by this process',
    );
    this.oldest = metrics.gauge(
      'events_oldest_partition_timestamp_seconds',
      'Start (Unix time) of the oldest daily partition of events, as of the last maintenance',
    );
    this.waiting = metrics.gauge(
      'events_default_partition_rows',
      'Events in the default partition after the last maintenance (days beyond those created ahead)',
    );
  }

  onApplicationBootstrap(): void {
    this.maintaining = this.maintainLogged();
    this.timer = setInterval(() => {
      this.maintaining = this.maintainLogged();
    }, MAINTENANCE_INTERVAL_MS);
  }

  onModuleDestroy(): void {
    void this.shutdown.begin();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.shutdown.begin();
  }

  /** One round at `now`; throws when PostgreSQL refuses (the caller logs, the next round retries). */
  async maintain(now = new Date()): Promise<PartitionRound> {
    const { retentionDays, partitionsAheadDays } = this.config.events;
    const today = dayOf(now);
    const lastAhead = today + partitionsAheadDays;
    // The first day still (partly) inside the retention; whole days before it are dropped.
    const firstKept =
      retentionDays > 0 ? dayOf(new Date(now.getTime() - retentionDays * DAY_MS)) : -Infinity;
    const existing = new Set(await this.repository.partitionDays());
    const waitingDays = await this.repository.defaultPartitionDays();
    const created: string[] = [];
    let moved = 0;
    const create = async (day: number) => {
      if (existing.has(day)) return;
      const took = await this.repository.createPartition(day);
      existing.add(day);
      if (took === undefined) return;
      created.push(eventsPartitionName(day));
      moved += took;
      this.created.inc();
    };
    // The days ahead first: a late day's move is what can fail (a row of that day inserted into the
    // default partition meanwhile, still uncommitted), and it must not hold up the rest.
    for (let day = today; day <= lastAhead; day++) await create(day);
    const dropped: string[] = [];
    let expired = 0;
    if (retentionDays > 0) {
      for (const day of [...existing].sort((a, b) => a - b)) {
        if (day >= firstKept) break;
        await this.repository.dropPartition(day);
        existing.delete(day);
        dropped.push(eventsPartitionName(day));
        this.dropped.inc();
      }
      if (waitingDays.some(({ day }) => day < firstKept)) {
        expired = await this.repository.deleteDefaultBefore(firstKept);
      }
    }
    for (const { day } of waitingDays) {
      if (day >= firstKept && day <= lastAhead) await create(day);
    }
    const waiting = waitingDays
      .filter(({ day }) => day >= firstKept && !existing.has(day))
      .reduce((sum, { rows }) => sum + rows, 0);
    const oldestDay = Math.min(...existing);
    const oldest = Number.isFinite(oldestDay) ? new Date(oldestDay * DAY_MS) : null;
    this.oldest.set(oldest === null ? 0 : oldest.getTime() / 1000);
    this.waiting.set(waiting);
    return { created, moved, dropped, expired, waiting, oldest };
  }

  private async maintainLogged(): Promise<void> {
    try {
      const round = await this.maintain();
      const { retentionDays, partitionsAheadDays } = this.config.events;
      const fields = {
        ...round,
        oldest: round.oldest?.toISOString().slice(0, 10) ?? null,
        retentionDays,
        partitionsAheadDays,
      };
      if (round.waiting > 0) {
        this.logger.warn(
          fields,
          'events wait in the default partition: days beyond those created ahead',
        );
      } else if (round.created.length + round.dropped.length + round.expired > 0) {
        this.logger.info(fields, 'events partitions maintained');
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'events partition maintenance failed; next in an hour');
    }
  }
}
