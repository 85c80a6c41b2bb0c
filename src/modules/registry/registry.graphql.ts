import { Field, Float, ID, Int, ObjectType, registerEnumType } from '@nestjs/graphql';
import type {
  ModelMetrics,
  ModelStatus,
  ModelVersion,
  RunStatus,
  TrainingMode,
  TrainingRun,
} from './registry.types';

/** GraphQL enum names are upper case; the stored values stay as the database has them. */
export enum ModelVersionStatusGql {
  TRAINING = 'training',
  CANDIDATE = 'candidate',
  ACTIVE = 'active',
  RETIRED = 'retired',
  FAILED = 'failed',
}
registerEnumType(ModelVersionStatusGql, { name: 'ModelVersionStatus' });

export enum TrainingModeGql {
  INCREMENTAL = 'INCREMENTAL',
  FULL = 'FULL',
}
registerEnumType(TrainingModeGql, {
  name: 'TrainingMode',
  valuesMap: {
    INCREMENTAL: { description: 'fine-tune the active version on events since it was trained' },
    FULL: { description: 'train from scratch on every event' },
  },
});

export enum TrainingRunStatusGql {
  QUEUED = 'queued',
  RUNNING = 'running',
  SUCCEEDED = 'succeeded',
  FAILED = 'failed',
}
registerEnumType(TrainingRunStatusGql, { name: 'TrainingRunStatus' });

@ObjectType('ModelMetric')
export class ModelMetricGql {
  @Field() name!: string;
  @Field(() => Float, { nullable: true, description: 'null when not finite (NaN, Infinity)' })
  value!: number | null;
}

@ObjectType('ModelVersion')
export class ModelVersionGql {
  @Field(() => ID) id!: string;
  @Field(() => ID, { nullable: true, description: 'the version it was warm-started from' })
  parentId!: string | null;
  @Field(() => ModelVersionStatusGql) status!: ModelVersionStatusGql;
  @Field(() => String, { nullable: true, description: 'why it has its status (gate, rollback…)' })
  statusReason!: string | null;
  @Field() encoderId!: string;
  @Field(() => String, { nullable: true }) backend!: string | null;
  @Field(() => Date, { nullable: true }) trainFrom!: Date | null;
  @Field(() => Date, { nullable: true }) trainTo!: Date | null;
  @Field(() => Date, { nullable: true, description: 'validation window the metrics come from' })
  validFrom!: Date | null;
  @Field(() => Date, { nullable: true }) validTo!: Date | null;
  @Field(() => Int, { nullable: true }) trainSamples!: number | null;
  @Field(() => Int, { nullable: true }) validSamples!: number | null;
  @Field(() => [ModelMetricGql]) metrics!: ModelMetricGql[];
  @Field(() => Float, { nullable: true, description: 'the metric the promotion gate compares' })
  auc!: number | null;
  @Field({ description: 'hyperparameters as a JSON object' }) hyperparameters!: string;
  @Field() triggeredBy!: string;
  @Field() createdAt!: Date;
  @Field(() => Date, { nullable: true }) activatedAt!: Date | null;
  @Field(() => String, { nullable: true }) artifactSha256!: string | null;
  @Field(() => Int, { nullable: true }) artifactBytes!: number | null;
}

@ObjectType('ModelActivation', {
  description: 'An entry of the activation log: a change of the active version, or a canary event',
})
export class ModelActivationGql {
  @Field(() => ID) id!: string;
  @Field(() => ID) versionId!: string;
  @Field(() => ID, {
    nullable: true,
    description: 'the version active before (for canary entries: the one active then)',
  })
  previousVersionId!: string | null;
  @Field({
    description: 'promote, activate, rollback, canary_start, canary_promote or canary_rollback',
  })
  action!: string;
  @Field(() => String, { nullable: true }) reason!: string | null;
  @Field(() => ID, { nullable: true, description: 'the canary experiment' })
  experimentId!: string | null;
  @Field() triggeredBy!: string;
  @Field() createdAt!: Date;
}

@ObjectType('TrainingEpoch', { description: 'One finished epoch of the interest model' })
export class TrainingEpochGql {
  @Field(() => Int) epoch!: number;
  @Field(() => Float, { description: 'mean training loss over the epoch' }) loss!: number;
  @Field(() => Float, { nullable: true, description: 'validation AUC after the epoch' })
  validationAuc!: number | null;
  @Field(() => Float) seconds!: number;
}

@ObjectType('TrainingRun')
export class TrainingRunGql {
  @Field(() => ID) id!: string;
  @Field(() => TrainingModeGql) mode!: TrainingModeGql;
  @Field(() => TrainingRunStatusGql) status!: TrainingRunStatusGql;
  @Field(() => Float, { description: '0..1' }) progress!: number;
  @Field(() => ID, { nullable: true }) versionId!: string | null;
  @Field(() => String, {
    nullable: true,
    description: 'promoted, candidate (kept by the gate) or failed',
  })
  outcome!: string | null;
  @Field(() => String, { nullable: true }) error!: string | null;
  @Field() triggeredBy!: string;
  @Field() createdAt!: Date;
  @Field(() => Date, { nullable: true }) startedAt!: Date | null;
  @Field(() => Date, { nullable: true }) finishedAt!: Date | null;
  @Field(() => [TrainingEpochGql], { description: 'finished epochs so far, in order' })
  epochs!: TrainingEpochGql[];
  @Field(() => String, {
    nullable: true,
    description:
      'why a QUEUED run has not started yet (no text vectors of the encoder, an embedding backlog)',
  })
  waitingFor!: string | null;
}

const VERSION_STATUS: Record<ModelStatus, ModelVersionStatusGql> = {
  training: ModelVersionStatusGql.TRAINING,
  candidate: ModelVersionStatusGql.CANDIDATE,
  active: ModelVersionStatusGql.ACTIVE,
  retired: ModelVersionStatusGql.RETIRED,
  failed: ModelVersionStatusGql.FAILED,
};

const RUN_STATUS: Record<RunStatus, TrainingRunStatusGql> = {
  queued: TrainingRunStatusGql.QUEUED,
  running: TrainingRunStatusGql.RUNNING,
  succeeded: TrainingRunStatusGql.SUCCEEDED,
  failed: TrainingRunStatusGql.FAILED,
};

const MODE: Record<TrainingMode, TrainingModeGql> = {
  INCREMENTAL: TrainingModeGql.INCREMENTAL,
  FULL: TrainingModeGql.FULL,
};

function metricValue(value: number | undefined): number | null {
  return value !== undefined && Number.isFinite(value) ? value : null;
}

export function metricsGql(metrics: ModelMetrics): ModelMetricGql[] {
  return Object.entries(metrics)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => ({ name, value: metricValue(value) }));
}

export function versionGql(version: ModelVersion): ModelVersionGql {
  return {
    id: version.id,
    parentId: version.parentId,
    status: VERSION_STATUS[version.status],
    statusReason: version.statusReason,
    encoderId: version.encoderId,
    backend: version.backend,
    trainFrom: version.trainFrom,
    trainTo: version.trainTo,
    validFrom: version.validFrom,
    validTo: version.validTo,
    trainSamples: version.trainSamples,
    validSamples: version.validSamples,
    metrics: metricsGql(version.metrics),
    auc: metricValue(version.metrics.auc),
    hyperparameters: JSON.stringify(version.hyperparameters),
    triggeredBy: version.triggeredBy,
    createdAt: version.createdAt,
    activatedAt: version.activatedAt,
    artifactSha256: version.artifact?.sha256 ?? null,
    artifactBytes: version.artifact?.size ?? null,
  };
}

export function runGql(run: TrainingRun): TrainingRunGql {
  return {
    id: run.id,
    mode: MODE[run.mode],
    status: RUN_STATUS[run.status],
    progress: run.progress,
    versionId: run.versionId,
    outcome: run.outcome,
    error: run.error,
    triggeredBy: run.triggeredBy,
    createdAt: run.createdAt,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    epochs: run.epochs.map((epoch) => ({ ...epoch })),
    waitingFor: run.waitingFor,
  };
}
