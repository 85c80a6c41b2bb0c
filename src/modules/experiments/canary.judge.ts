import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import type { Gauge } from 'prom-client';
import type { Logger } from '../../common/logger';
import { ShutdownDeadline, ShutdownStep } from '../../common/shutdown-deadline';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { ExperimentService } from './experiment.service';
import type { ArmReport } from './online-report';

type ArmLabels = 'experiment' | 'arm';

/**
 * Every EXPERIMENT_JUDGE_INTERVAL_MS: reads the running experiment's online figures into the
 * per-arm gauges and judges a canary that has its impressions. Runs on every api replica; the
 * experiment's end is claimed in one conditional UPDATE, so one replica acts.
 */
@Injectable()
export class CanaryJudge
  implements OnApplicationBootstrap, OnModuleDestroy, BeforeApplicationShutdown
{
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | undefined;
  private judging: Promise<void> | undefined;
  /**
   * A pass's report joins the served-slate log with events: seconds on a large log, and until the
   * client gives up (past the grace period) on a database that answers nothing. The next pass, on
   * any replica, judges again.
   */
  private readonly shutdown = new ShutdownStep(async () => {
    clearInterval(this.timer);
    await this.deadline.wait(this.judging ?? Promise.resolve(), 'the canary judge', this.logger);
  });
  private readonly gauges: Record<'impressions' | 'clicks' | 'purchases' | 'ctr', Gauge<ArmLabels>>;

  constructor(
    private readonly experiments: ExperimentService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
    private readonly deadline: ShutdownDeadline,
  ) {
    this.logger = logger.child({ component: 'canary-judge' });
    const gauge = (name: string, help: string) =>
      metrics.labelledGauge(`experiment_arm_${name}`, help, ['experiment', 'arm']);
    this.gauges = {
      impressions: gauge(
        'impressions',
        'Impressions of the running experiment by arm (served-slate log joined with events)',
      ),
      clicks: gauge('clicks', 'Clicked items of the running experiment by arm'),
      purchases: gauge('purchases', 'Purchased items of the running experiment by arm'),
      ctr: gauge('ctr', 'Clicks per impression of the running experiment by arm'),
    };
  }

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.judge(), this.config.experiments.judgeIntervalMs);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    void this.shutdown.begin();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.shutdown.begin();
  }

  /** One pass; concurrent calls share it. */
  judge(): Promise<void> {
    this.judging ??= this.judgeOnce().finally(() => {
      this.judging = undefined;
    });
    return this.judging;
  }

  private async judgeOnce(): Promise<void> {
    try {
      const experiment = await this.experiments.running();
      if (experiment === null) return;
      const reports = await this.experiments.report(experiment);
      this.record(experiment.name, reports);
      const action = await this.experiments.judgeCanary(experiment, reports);
      if (action !== undefined)
        this.logger.info({ experiment: experiment.name, action }, 'canary judged');
    } catch (error) {
      this.logger.warn({ err: error }, 'judging the running experiment failed; next pass retries');
    }
  }

  private record(experiment: string, reports: readonly ArmReport[]): void {
    for (const report of reports) {
      const labels = { experiment, arm: report.arm.name };
      this.gauges.impressions.set(labels, report.counts.impressions);
      this.gauges.clicks.set(labels, report.counts.clicks);
      this.gauges.purchases.set(labels, report.counts.purchases);
      this.gauges.ctr.set(labels, report.ctr.rate);
    }
  }
}
