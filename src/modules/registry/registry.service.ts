import { Inject, Injectable } from '@nestjs/common';
import { DomainError, ValidationError } from '../../common/errors';
import { LOGGER } from '../../infra/tokens';
import type { Logger } from '../../common/logger';
import { ACTIVATION_CHANNEL, RegistryRepository } from './registry.repository';
import type { ActivationWrite } from './registry.repository';
import { ARTIFACT_STORE } from './registry.types';
import type {
  Activation,
  ArtifactStore,
  ModelVersion,
  TrainingMode,
  TrainingRun,
} from './registry.types';

export const MAX_VERSIONS_PAGE = 100;

/** Ids are positive integers (bigint identity) carried as strings. */
export function parseVersionId(raw: string, field = 'id'): string {
  const trimmed = raw.trim();
  if (!/^[1-9]\d{0,17}$/.test(trimmed))
    throw new ValidationError(field, 'must be a positive integer');
  return trimmed;
}

/**
 * Reads the registry, changes the active version (ops activation, rollback, promotion) and queues
 * training runs for the train role.
 */
@Injectable()
export class RegistryService {
  /** Replicas LISTEN here: every change of the active version is announced with its id. */
  readonly activationChannel = ACTIVATION_CHANNEL;

  private readonly logger: Logger;

  constructor(
    private readonly repository: RegistryRepository,
    @Inject(ARTIFACT_STORE) private readonly artifacts: ArtifactStore,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ component: 'model-registry' });
  }

  listVersions(first: number): Promise<ModelVersion[]> {
    if (!Number.isInteger(first) || first < 1 || first > MAX_VERSIONS_PAGE) {
      throw new ValidationError('first', `must be between 1 and ${String(MAX_VERSIONS_PAGE)}`);
    }
    return this.repository.listVersions(first);
  }

  activeVersion(): Promise<ModelVersion | null> {
    return this.repository.activeVersion();
  }

  /** Only the id: what every replica polls. */
  activeVersionId(): Promise<string | null> {
    return this.repository.activeVersionId();
  }

  /** The version's artifact bytes, sha256-verified. */
  artifact(versionId: string): Promise<Buffer> {
    return this.artifacts.get(versionId);
  }

  /**
   * Records a queued run for the train role to pick up, and returns it. CONFLICT while another run
   * is queued or running (one at a time).
   */
  async requestTraining(mode: TrainingMode, triggeredBy: string): Promise<TrainingRun> {
    const run = await this.repository.enqueueRun(mode, triggeredBy);
    if (run === null) {
      throw new DomainError('CONFLICT', 'a training run is already in progress', {
        runningRunId: (await this.repository.unfinishedRun())?.id ?? null,
      });
    }
    this.logger.info({ runId: run.id, mode, triggeredBy }, 'training run queued');
    return run;
  }

  listRuns(first: number): Promise<TrainingRun[]> {
    if (!Number.isInteger(first) || first < 1 || first > MAX_VERSIONS_PAGE) {
      throw new ValidationError('first', `must be between 1 and ${String(MAX_VERSIONS_PAGE)}`);
    }
    return this.repository.listRuns(first);
  }

  async getRun(rawId: string): Promise<TrainingRun> {
    const id = parseVersionId(rawId);
    const run = await this.repository.getRun(id);
    if (!run) throw new DomainError('NOT_FOUND', `training run ${id} does not exist`, { id });
    return run;
  }

  async getVersion(rawId: string): Promise<ModelVersion> {
    const id = parseVersionId(rawId);
    const version = await this.repository.getVersion(id);
    if (!version) throw new DomainError('NOT_FOUND', `model version ${id} does not exist`, { id });
    return version;
  }

  /** Ops activation of any loadable version (candidate, retired, or the active one: a no-op). */
  async activate(rawId: string, triggeredBy: string): Promise<ModelVersion> {
    const version = await this.loadableVersion(rawId);
    await this.repository.activate(plainActivation(version.id, triggeredBy));
    this.logger.info({ versionId: version.id, triggeredBy }, 'model version activated');
    return this.getVersion(version.id);
  }

  /** The gate's promotion of a freshly trained version. */
  async promote(id: string, reason: string, triggeredBy: string): Promise<void> {
    await this.repository.activate({
      id,
      action: 'promote',
      triggeredBy,
      reason: `promoted: ${reason}`,
      retiredReason: `replaced by version ${id} (promoted)`,
    });
    this.logger.info({ versionId: id, reason }, 'model version promoted');
  }

  activations(first: number): Promise<Activation[]> {
    if (!Number.isInteger(first) || first < 1 || first > MAX_VERSIONS_PAGE) {
      throw new ValidationError('first', `must be between 1 and ${String(MAX_VERSIONS_PAGE)}`);
    }
    return this.repository.activations(first);
  }

  /** Back to the version that was active before the current one. */
  async rollback(triggeredBy: string): Promise<ModelVersion> {
    const current = await this.repository.activeVersion();
    if (!current) throw new DomainError('CONFLICT', 'no active model version to roll back');
    const previousId = await this.repository.previousOf(current.id);
    if (previousId === null) {
      throw new DomainError('CONFLICT', `version ${current.id} has no previous active version`, {
        activeId: current.id,
      });
    }
    const previous = await this.loadableVersion(previousId);
    await this.repository.activate({
      id: previous.id,
      action: 'rollback',
      triggeredBy,
      reason: `rollback from version ${current.id} by ${triggeredBy}`,
      // A second rollback goes one step further back, not forth again.
      previousOverride: await this.repository.previousOf(previous.id),
      retiredReason: `rolled back by ${triggeredBy}`,
    });
    this.logger.info({ from: current.id, to: previous.id, triggeredBy }, 'model rolled back');
    return this.getVersion(previous.id);
  }

  /** The version, when it can be served: not failed or training, and its artifact intact. */
  async loadableVersion(rawId: string): Promise<ModelVersion> {
    const version = await this.getVersion(rawId);
    if (version.status === 'failed' || version.status === 'training') {
      throw new DomainError(
        'CONFLICT',
        `model version ${version.id} is ${version.status} and cannot be activated`,
        { id: version.id, status: version.status, reason: version.statusReason },
      );
    }
    try {
      // Reads and digests the bytes: a corrupt artifact is refused before any replica tries it.
      await this.artifacts.get(version.id);
    } catch (error) {
      if (
        error instanceof DomainError &&
        (error.code === 'NOT_FOUND' || error.code === 'CONFLICT')
      ) {
        throw new DomainError(
          'CONFLICT',
          `model version ${version.id} is not loadable: ${error.message}`,
          {
            id: version.id,
            ...error.details,
          },
        );
      }
      throw error;
    }
    return version;
  }
}

/** How an activation of version `id` by `triggeredBy` is written. */
export function plainActivation(id: string, triggeredBy: string): ActivationWrite {
  return {
    id,
    action: 'activate',
    triggeredBy,
    reason: `activated by ${triggeredBy}`,
    retiredReason: `replaced by version ${id} (activated by ${triggeredBy})`,
  };
}

/** A canary's promotion: `id` becomes active, the log says which experiment judged it. */
export function canaryPromotion(
  id: string,
  reason: string,
  experimentId: string,
  triggeredBy: string,
): ActivationWrite {
  return {
    id,
    action: 'canary_promote',
    triggeredBy,
    reason: `canary promoted: ${reason}`,
    retiredReason: `replaced by version ${id} (canary promoted)`,
    experimentId,
  };
}
