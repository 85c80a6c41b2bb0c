import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationBootstrap,
} from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import { LOGGER } from '../../infra/tokens';
import { BatchHandler, ConsumerHandle, IngestKafkaRepository } from './ingest-kafka.repository';
import { IngestService, TOPICS } from './ingest.service';
import { OnlineStateService } from './online-state.service';

const START_RETRY_MS = 5000;

/** The ingest role's edge: the two consumer groups and the online-state catch-up timer. */
@Injectable()
export class IngestConsumer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger: Logger;
  private readonly handles: ConsumerHandle[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private starting: Promise<void> = Promise.resolve();

  constructor(
    private readonly kafka: IngestKafkaRepository,
    private readonly ingest: IngestService,
    private readonly onlineState: OnlineStateService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ component: 'ingest-consumer' });
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.onlineState.catchUp();
    this.timer = setInterval(() => {
      void this.onlineState.catchUp();
    }, this.config.online.catchUpIntervalMs);
    // Consumers start in the background: a broker or topic that is not there yet must not keep the
    // process from serving health and metrics; `start` retries until it is.
    this.starting = Promise.all([
      this.start(
        TOPICS.events,
        this.config.ingest.eventsGroupId,
        this.config.ingest.partitionsConcurrency,
        (batch, control) => this.ingest.handleEvents(batch, control),
      ),
      this.start(TOPICS.items, this.config.ingest.itemsGroupId, 1, (batch, control) =>
        this.ingest.handleItems(batch, control),
      ),
    ]).then(() => undefined);
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.starting;
    await Promise.allSettled(this.handles.map((handle) => handle.stop()));
  }

  private async start(
    topic: string,
    groupId: string,
    concurrency: number,
    handler: (...args: Parameters<BatchHandler>) => Promise<unknown>,
  ): Promise<void> {
    while (!this.stopped) {
      try {
        const handle = await this.kafka.startConsumer(
          { topic, groupId, concurrency },
          async (batch, control) => {
            await handler(batch, control);
          },
        );
        this.handles.push(handle);
        this.logger.info({ topic, groupId }, 'consuming');
        return;
      } catch (error) {
        this.logger.error({ err: error, topic }, 'consumer failed to start, retrying');
        await new Promise((resolve) => setTimeout(resolve, START_RETRY_MS));
      }
    }
  }
}
