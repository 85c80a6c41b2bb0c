import { randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { DomainError, ValidationError } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { LOGGER } from '../../infra/tokens';
import {
  canaryPromotion,
  parseVersionId,
  plainActivation,
  RegistryService,
} from '../registry/registry.service';
import type { ActivationWrite, CanaryLog } from '../registry/registry.repository';
import type { ModelVersion } from '../registry/registry.types';
import {
  DEFAULT_DESIGN,
  Experiment,
  ExperimentDesign,
  NewExperiment,
  validateExperiment,
} from './experiment';
import { ExperimentsRepository, StopEffects } from './experiments.repository';
import { ArmReport, armReports, OnlineFigures, onlineFigures } from './online-report';

export const MAX_EXPERIMENTS_PAGE = 100;

/** What ops submit for a new experiment; design fields default to DEFAULT_DESIGN. */
export type ExperimentDraft = Omit<NewExperiment, 'kind' | 'salt' | keyof ExperimentDesign> &
  Partial<ExperimentDesign> & { readonly salt?: string };

/** A canary's request: the share of users the new version gets, and the impressions to judge. */
export interface CanaryRequest {
  readonly percent: number;
  readonly minImpressions?: number;
}

/**
 * Experiments from draft to stopped, canaries from start to promotion or rollback, and the online
 * figures of both (served-slate log joined with the events carrying its request ids).
 */
@Injectable()
export class ExperimentService {
  private readonly logger: Logger;

  constructor(
    private readonly repository: ExperimentsRepository,
    private readonly registry: RegistryService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ component: 'experiments' });
  }

  list(first: number): Promise<Experiment[]> {
    if (!Number.isInteger(first) || first < 1 || first > MAX_EXPERIMENTS_PAGE) {
      throw new ValidationError('first', `must be between 1 and ${MAX_EXPERIMENTS_PAGE}`);
    }
    return this.repository.list(first);
  }

  async get(rawId: string): Promise<Experiment> {
    const id = parseVersionId(rawId);
    const experiment = await this.repository.get(id);
    if (experiment === null) {
      throw new DomainError('NOT_FOUND', `experiment ${id} does not exist`, { id });
    }
    return experiment;
  }

  running(): Promise<Experiment | null> {
    return this.repository.running();
  }

  /** A draft: validated, its versions loadable and its profiles existing. */
  async create(draft: ExperimentDraft, createdBy: string): Promise<Experiment> {
    const input = validateExperiment({
      ...DEFAULT_DESIGN,
      ...definedOnly({
        minImpressions: draft.minImpressions,
        minDetectableLift: draft.minDetectableLift,
        confidence: draft.confidence,
        power: draft.power,
      }),
      name: draft.name,
      arms: draft.arms,
      kind: 'ab',
      salt: draft.salt ?? draft.name,
    });
    await this.assertServable(input);
    const experiment = await this.repository.create(input, 'draft', createdBy);
    this.logger.info({ experiment: experiment.name, createdBy }, 'experiment created');
    return experiment;
  }

  /** Draft to running: every replica serves its arms within EXPERIMENT_REFRESH_MS. */
  async start(rawId: string, triggeredBy: string): Promise<Experiment> {
    const experiment = await this.get(rawId);
    if (experiment.status !== 'draft') {
      throw new DomainError('CONFLICT', `experiment ${experiment.id} is ${experiment.status}`, {
        status: experiment.status,
      });
    }
    // A version may have failed or a profile gone since the draft was written.
    await this.assertServable(experiment);
    const started = await this.repository.start(experiment.id);
    if (started === null) {
      throw new DomainError('CONFLICT', `experiment ${experiment.id} is no longer a draft`);
    }
    this.logger.info({ experiment: started.name, triggeredBy }, 'experiment started');
    return started;
  }

  /** Ends a running experiment without promoting anything (a canary: its version stays off). */
  async stop(rawId: string, triggeredBy: string): Promise<Experiment> {
    const experiment = await this.get(rawId);
    const reason = `stopped by ${triggeredBy}`;
    return this.claimEnd(experiment, 'stopped', reason, {
      canaryLog: canaryRollback(experiment, reason, triggeredBy),
    });
  }

  /**
   * Ends the experiment in favour of `armName`: its version becomes the active one and its
   * profile (when it names one) the `default` profile.
   */
  async promoteArm(rawId: string, armName: string, triggeredBy: string): Promise<Experiment> {
    const experiment = await this.get(rawId);
    const arm = experiment.arms.find((candidate) => candidate.name === armName);
    if (arm === undefined) {
      throw new ValidationError(
        'arm',
        `experiment ${experiment.id} has no arm "${armName}" (arms: ${experiment.arms.map((a) => a.name).join(', ')})`,
      );
    }
    if (arm.modelVersion !== null) await this.registry.loadableVersion(arm.modelVersion);
    const reason = `arm ${arm.name} promoted by ${triggeredBy}`;
    let activate: ActivationWrite | undefined;
    if (arm.modelVersion !== null) {
      activate =
        experiment.kind === 'canary'
          ? canaryPromotion(arm.modelVersion, reason, experiment.id, triggeredBy)
          : plainActivation(arm.modelVersion, `${triggeredBy} (experiment ${experiment.name})`);
    }
    return this.claimEnd(experiment, `promoted ${arm.name}`, reason, {
      promoteProfile: arm.profile ?? undefined,
      activate,
    });
  }

  /**
   * `activateModelVersion`: at once for everyone, or as a canary serving `canary.percent` of users
   * until the judge promotes or rolls it back. A plain activation while a canary runs would
   * change its control under it: CONFLICT.
   */
  async activate(
    rawId: string,
    canary: CanaryRequest | undefined,
    triggeredBy: string,
  ): Promise<ModelVersion> {
    const running = await this.repository.running();
    if (canary === undefined) {
      if (running?.kind === 'canary') {
        throw new DomainError(
          'CONFLICT',
          `canary experiment ${running.id} (${running.name}) is running; promote or stop it first`,
          { experimentId: running.id },
        );
      }
      return this.registry.activate(rawId, triggeredBy);
    }
    const version = await this.registry.loadableVersion(rawId);
    if (version.status === 'active') {
      throw new DomainError('CONFLICT', `model version ${version.id} is already active`);
    }
    const { percent } = canary;
    if (!Number.isFinite(percent) || percent <= 0 || percent >= 100) {
      throw new ValidationError('canaryPercent', 'must be a percent above 0 and below 100');
    }
    const name = `canary-v${version.id}-${randomBytes(3).toString('hex')}`;
    const draft = validateExperiment({
      ...DEFAULT_DESIGN,
      name,
      kind: 'canary',
      salt: name,
      minImpressions: canary.minImpressions ?? this.config.experiments.canaryMinImpressions,
      arms: [
        { name: 'control', modelVersion: null, profile: null, share: 100 - percent },
        { name: 'canary', modelVersion: version.id, profile: null, share: percent },
      ],
    });
    await this.repository.create(draft, 'running', triggeredBy, {
      versionId: version.id,
      action: 'canary_start',
      triggeredBy,
      reason: `canary at ${percent}% of users (experiment ${name}), judged after ${draft.minImpressions} impressions per arm`,
    });
    this.logger.info({ versionId: version.id, experiment: name, percent }, 'canary started');
    return this.registry.getVersion(version.id);
  }

  /**
   * Each arm's online figures since the experiment started, against the control; slates inside
   * the attribution delay wait, so that the canary judge never reads one before its events.
   */
  async report(experiment: Experiment): Promise<ArmReport[]> {
    const counts =
      experiment.startedAt === null
        ? new Map()
        : await this.repository.armCounts(experiment.id, experiment.startedAt, this.attributed());
    return armReports(experiment.arms, counts, experiment);
  }

  /**
   * A version's own online figures over the last EXPERIMENT_VERSION_WINDOW_HOURS (the slates past
   * the attribution delay).
   */
  async versionFigures(
    versionId: string,
  ): Promise<{ figures: OnlineFigures; windowHours: number }> {
    const windowHours = this.config.experiments.versionWindowHours;
    const since = new Date(Date.now() - windowHours * 3_600_000);
    const counts = await this.repository.versionCounts(versionId, since, this.attributed());
    return { figures: onlineFigures(counts, DEFAULT_DESIGN.confidence), windowHours };
  }

  /**
   * Judges a running canary that has its impressions: rolled back when the canary's CTR is
   * significantly worse than the control's, promoted otherwise. Every replica may call it; only
   * the first to end the experiment acts. Returns what it did.
   */
  async judgeCanary(
    experiment: Experiment,
    reports: readonly ArmReport[],
  ): Promise<'promoted' | 'rolled_back' | undefined> {
    const canary = reports.at(1);
    if (experiment.kind !== 'canary' || canary === undefined) return undefined;
    const versionId = canary.arm.modelVersion;
    if (versionId === null || canary.verdict === 'collecting') return undefined;
    const judge = 'canary judge';
    if (canary.verdict === 'worse') {
      const reason = `canary rolled back: ${canary.summary}`;
      const stopped = await this.repository.stop(experiment.id, 'rolled back', reason, {
        canaryLog: canaryRollback(experiment, reason, judge),
      });
      if (stopped === null) return undefined;
      this.logger.warn({ versionId, experiment: experiment.name, reason }, 'canary rolled back');
      return 'rolled_back';
    }
    const stopped = await this.repository.stop(experiment.id, 'promoted canary', canary.summary, {
      activate: canaryPromotion(versionId, canary.summary, experiment.id, judge),
    });
    if (stopped === null) return undefined;
    this.logger.info({ versionId, experiment: experiment.name }, 'canary promoted');
    return 'promoted';
  }

  /**
   * The figures count slates served before this: EXPERIMENT_ATTRIBUTION_DELAY_MS gives their
   * events time to be stored (until then a slate counts its logged items, none clicked).
   */
  private attributed(): Date {
    return new Date(Date.now() - this.config.experiments.attributionDelayMs);
  }

  private async claimEnd(
    experiment: Experiment,
    outcome: string,
    reason: string,
    effects?: StopEffects,
  ): Promise<Experiment> {
    const stopped = await this.repository.stop(experiment.id, outcome, reason, effects);
    if (stopped === null) {
      throw new DomainError('CONFLICT', `experiment ${experiment.id} is not running`, {
        status: experiment.status,
      });
    }
    this.logger.info({ experiment: stopped.name, outcome, reason }, 'experiment ended');
    return stopped;
  }

  /** Every arm's version loadable and every arm's profile existing; CONFLICT / BAD_USER_INPUT. */
  private async assertServable(input: NewExperiment): Promise<void> {
    for (const arm of input.arms) {
      if (arm.modelVersion !== null) await this.registry.loadableVersion(arm.modelVersion);
    }
    const profiles = input.arms.flatMap((arm) => (arm.profile === null ? [] : [arm.profile]));
    const missing = await this.repository.missingProfiles(profiles);
    if (missing.length > 0) {
      const index = input.arms.findIndex((arm) => arm.profile === missing[0]);
      throw new ValidationError(
        `arms[${index}].profile`,
        `unknown ranking profile "${missing[0]}"`,
      );
    }
  }
}

/** The activation-log entry for ending a canary without promoting it; undefined otherwise. */
function canaryRollback(
  experiment: Experiment,
  reason: string,
  triggeredBy: string,
): CanaryLog | undefined {
  const versionId = experiment.arms.at(1)?.modelVersion;
  if (experiment.kind !== 'canary' || versionId === null || versionId === undefined) {
    return undefined;
  }
  return { versionId, action: 'canary_rollback', triggeredBy, reason, experimentId: experiment.id };
}

/** The draft without its undefined fields, so that defaults stand. */
function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(value).filter(([, field]) => field !== undefined),
  ) as Partial<T>;
}
