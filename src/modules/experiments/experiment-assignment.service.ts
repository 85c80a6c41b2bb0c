import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { Counter } from 'prom-client';
import { DomainError, ValidationError } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { Arm, armOf, Experiment } from './experiment';
import { ExperimentsRepository } from './experiments.repository';

/** The arm a request is served by. */
export interface Assignment {
  readonly experiment: Experiment;
  readonly arm: Arm;
  /** Forced by an ops caller (QA): the arm must be served as asked or not at all. */
  readonly forced: boolean;
}

/**
 * The running experiment as this replica knows it, re-read every EXPERIMENT_REFRESH_MS, and the
 * arm of each request: a pure function of salt and user id, so the same on every replica.
 */
@Injectable()
export class ExperimentAssignment implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger: Logger;
  private running: Experiment | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly requests: Counter<'experiment' | 'arm' | 'outcome'>;

  constructor(
    private readonly repository: ExperimentsRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
  ) {
    this.logger = logger.child({ component: 'experiments' });
    this.requests = metrics.counter(
      'experiment_requests_total',
      'rank/recommend requests of the running experiment by arm; outcome forced: an ops caller forced the arm (not in its figures); unavailable: the arm’s version was not loaded on this replica yet, served outside the experiment',
      ['experiment', 'arm', 'outcome'],
    );
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.reload();
    this.timer = setInterval(() => void this.reload(), this.config.experiments.refreshMs);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /**
   * The user's arm of the running experiment; undefined without one. `forcedArm` (ops QA) picks
   * the arm by name instead: BAD_USER_INPUT on `arm` when no running experiment has it.
   */
  assign(userId: string, forcedArm?: string): Assignment | undefined {
    const experiment = this.running;
    if (forcedArm !== undefined) {
      const arm = experiment?.arms.find((candidate) => candidate.name === forcedArm);
      if (experiment === undefined || arm === undefined) {
        const known = experiment?.arms.map((candidate) => candidate.name).join(', ');
        throw new ValidationError(
          'arm',
          experiment === undefined
            ? 'no experiment is running'
            : `experiment "${experiment.name}" has no arm "${forcedArm}" (arms: ${known ?? ''})`,
        );
      }
      return { experiment, arm, forced: true };
    }
    return experiment === undefined
      ? undefined
      : { experiment, arm: armOf(experiment, userId), forced: false };
  }

  /** Counts a request served by its arm. */
  served(assignment: Assignment): void {
    this.requests.inc({
      experiment: assignment.experiment.name,
      arm: assignment.arm.name,
      outcome: assignment.forced ? 'forced' : 'served',
    });
  }

  /**
   * The arm's version is not loaded here yet (it loads within seconds of the start): the request
   * is served outside the experiment and counted, unless the arm was forced (UNAVAILABLE then).
   */
  unavailable(assignment: Assignment): void {
    const { experiment, arm } = assignment;
    if (assignment.forced) {
      throw new DomainError(
        'UNAVAILABLE',
        `arm "${arm.name}" serves version ${arm.modelVersion ?? '-'}, not loaded on this replica yet`,
        { experiment: experiment.name, arm: arm.name },
      );
    }
    this.requests.inc({ experiment: experiment.name, arm: arm.name, outcome: 'unavailable' });
  }

  /** The versions the running experiment's arms name, read now (the model swap loads them). */
  async armVersions(): Promise<string[]> {
    const running = await this.repository.running();
    return (running?.arms ?? []).flatMap((arm) =>
      arm.modelVersion === null ? [] : [arm.modelVersion],
    );
  }

  private async reload(): Promise<void> {
    try {
      this.running = (await this.repository.running()) ?? undefined;
    } catch (error) {
      this.logger.warn({ err: error }, 'experiments reload failed; keeping the last copy');
    }
  }
}
