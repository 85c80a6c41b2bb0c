import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationBootstrap,
} from '@nestjs/common';
import type { Logger } from '../../common/logger';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { PgListener } from '../../infra/pg-listener';
import { LOGGER, PG_LISTENER } from '../../infra/tokens';
import { TRAINING_QUEUE_CHANNEL } from '../registry/registry.repository';
import { TrainingRunService } from './training-run.service';

/**
 * The train role's edge: runs what `trainModel` queued. A NOTIFY wakes it at once; a poll every
 * TRAIN_QUEUE_POLL_MS catches a notification lost while its connection was down, and a run left
 * queued while no trainer ran.
 */
@Injectable()
export class TrainingQueueWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger: Logger;
  private draining: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly runs: TrainingRunService,
    @Inject(PG_LISTENER) private readonly listener: PgListener,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ component: 'training-queue' });
  }

  async onApplicationBootstrap(): Promise<void> {
    this.listener.onReconnect(() => {
      this.wake();
    });
    await this.listener
      .listen(TRAINING_QUEUE_CHANNEL, () => {
        this.wake();
      })
      .catch((error: unknown) => {
        this.logger.warn({ err: error }, 'cannot LISTEN for queued training runs yet; retrying');
      });
    this.wake();
    this.timer = setInterval(() => {
      this.wake();
    }, this.config.modelLifecycle.queuePollMs);
    this.timer.unref();
  }

  beforeApplicationShutdown(): void {
    this.stopped = true;
    clearInterval(this.timer);
    // A run in progress is aborted and awaited by TrainingRunService's own shutdown hook.
  }

  /** Drains the queue; a wake-up during a drain makes it look once more. */
  private wake(): void {
    if (this.stopped) return;
    if (this.draining) {
      this.again = true;
      return;
    }
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
    });
  }

  private async drain(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.runs.runQueued();
      } catch (error) {
        this.logger.error({ err: error }, 'could not run queued training runs');
      }
    } while (this.wokenMeanwhile() && !this.stopped);
  }

  /** Read through a method: set by `wake` while a drain awaits. */
  private wokenMeanwhile(): boolean {
    return this.again;
  }
}
