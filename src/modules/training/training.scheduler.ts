import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationBootstrap,
} from '@nestjs/common';
import type { Logger } from '../../common/logger';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { LOGGER } from '../../infra/tokens';
import { CronSchedule, parseCron } from '../../common/cron';
import { TrainingRunService } from './training-run.service';

/** setTimeout's ceiling; longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The train role: incremental fine-tuning on TRAIN_CRON when enough new events arrived. */
@Injectable()
export class TrainingScheduler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger: Logger;
  private readonly schedule: CronSchedule | null;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly training: TrainingRunService,
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ component: 'training-scheduler' });
    const cron = config.modelLifecycle.trainCron;
    this.schedule = cron === null ? null : parseCron(cron);
  }

  onApplicationBootstrap(): void {
    if (!this.schedule) {
      this.logger.info('TRAIN_CRON=off: no scheduled training');
      return;
    }
    this.arm();
  }

  beforeApplicationShutdown(): void {
    // A run in progress is aborted and awaited by TrainingRunService's own shutdown hook.
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private arm(): void {
    if (!this.schedule || this.stopped) return;
    const next = this.schedule.next(new Date());
    const delay = next.getTime() - Date.now();
    this.logger.info({ next: next.toISOString() }, 'next scheduled training check');
    this.timer = setTimeout(
      () => {
        if (Date.now() < next.getTime()) {
          this.arm();
          return;
        }
        void this.fire().finally(() => {
          this.arm();
        });
      },
      Math.min(Math.max(delay, 0), MAX_TIMER_MS),
    );
  }

  private async fire(): Promise<void> {
    try {
      const outcome = await this.training.runIfDue('schedule');
      if (outcome.kind === 'skipped') {
        this.logger.info({ reason: outcome.reason }, 'scheduled training skipped');
      } else {
        this.logger.info(
          { runId: outcome.run.id, status: outcome.run.status, outcome: outcome.run.outcome },
          'scheduled training done',
        );
      }
    } catch (error) {
      this.logger.error({ err: error }, 'scheduled training failed');
    }
  }
}
