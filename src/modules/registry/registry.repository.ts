import { Inject, Injectable } from '@nestjs/common';
import { DatabaseError, Pool, PoolClient } from 'pg';
import { inTransaction } from '../../infra/postgres';
import { PG_DIRECT_POOL, PG_POOL } from '../../infra/tokens';
import type {
  Activation,
  ModelMetrics,
  ModelStatus,
  ModelVersion,
  RunEpoch,
  RunStatus,
  TimeWindow,
  TrainingMode,
  TrainingRun,
} from './registry.types';

/** NOTIFY channel announcing a change of the active version; the payload is its id. */
export const ACTIVATION_CHANNEL = 'recsys_model_activated';
/** NOTIFY channel announcing a queued training run; the payload is its id. */
export const TRAINING_QUEUE_CHANNEL = 'recsys_training_queued';

/** Key of the session advisory lock that every trainer takes (scoped to the database). */
const TRAINING_LOCK_KEY = 7_301_962_417;

interface VersionRecord {
  id: string;
  parent_id: string | null;
  status: ModelStatus;
  encoder_id: string;
  backend: string | null;
  train_from: Date | null;
  train_to: Date | null;
  valid_from: Date | null;
  valid_to: Date | null;
  train_samples: number | null;
  valid_samples: number | null;
  events_seq: string | null;
  hyperparameters: Record<string, unknown>;
  metrics: Record<string, number | null>;
  status_reason: string | null;
  triggered_by: string;
  created_at: Date;
  activated_at: Date | null;
  sha256: string | null;
  size: number | null;
}

const VERSION_SELECT = `
  SELECT v.id, v.parent_id, v.status, v.encoder_id, v.backend, v.train_from, v.train_to,
         v.valid_from, v.valid_to, v.train_samples, v.valid_samples, v.events_seq,
         v.hyperparameters, v.metrics, v.status_reason, v.triggered_by, v.created_at,
         v.activated_at, a.sha256, a.size
    FROM model_versions v LEFT JOIN model_artifacts a ON a.version_id = v.id`;

function toVersion(row: VersionRecord): ModelVersion {
  return {
    id: row.id,
    parentId: row.parent_id,
    status: row.status,
    encoderId: row.encoder_id,
    backend: row.backend,
    trainFrom: row.train_from,
    trainTo: row.train_to,
    validFrom: row.valid_from,
    validTo: row.valid_to,
    trainSamples: row.train_samples,
    validSamples: row.valid_samples,
    eventsSeq: row.events_seq,
    hyperparameters: row.hyperparameters,
    metrics: Object.fromEntries(
      Object.entries(row.metrics).map(([name, value]) => [name, value ?? Number.NaN]),
    ),
    statusReason: row.status_reason,
    triggeredBy: row.triggered_by,
    createdAt: row.created_at,
    activatedAt: row.activated_at,
    artifact: row.sha256 === null ? null : { sha256: row.sha256, size: row.size ?? 0 },
  };
}

interface RunRecord {
  id: string;
  mode: TrainingMode;
  status: RunStatus;
  progress: number;
  version_id: string | null;
  outcome: string | null;
  error: string | null;
  triggered_by: string;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  epochs: RunEpoch[];
  waiting_for: string | null;
}

const RUN_COLUMNS =
  'id, mode, status, progress, version_id, outcome, error, triggered_by, created_at, started_at, finished_at, epochs, waiting_for';

function toRun(row: RunRecord): TrainingRun {
  return {
    id: row.id,
    mode: row.mode,
    status: row.status,
    progress: row.progress,
    versionId: row.version_id,
    outcome: row.outcome,
    error: row.error,
    triggeredBy: row.triggered_by,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    epochs: row.epochs,
    waitingFor: row.waiting_for,
  };
}

export interface TrainedVersionFields {
  readonly encoderId: string;
  readonly backend: string;
  readonly trainWindow: TimeWindow | null;
  readonly validation: TimeWindow;
  readonly trainSamples: number;
  readonly validSamples: number;
  readonly eventsSeq: string;
  readonly hyperparameters: Readonly<Record<string, unknown>>;
  readonly metrics: ModelMetrics;
}

/** Held while training; releasing returns the connection to the pool. */
export interface TrainingLock {
  release(): Promise<void>;
}

/** What changed the active version. */
export type ActivationAction = 'promote' | 'activate' | 'rollback' | 'canary_promote';
/** What the activation log also records about a canary (the active version does not change). */
export type CanaryAction = 'canary_start' | 'canary_rollback';

export interface CanaryLog {
  versionId: string;
  action: CanaryAction;
  triggeredBy: string;
  reason: string;
  experimentId: string;
}

/**
 * Logs a canary's start or rollback next to the activations (the active version is unchanged);
 * a rollback also records its reason as the version's status reason. Takes the caller's
 * transaction, so that a canary's start or end and its log entry commit together.
 */
export async function insertCanaryLog(client: PoolClient, input: CanaryLog): Promise<void> {
  await client.query(
    `INSERT INTO model_activations
       (version_id, previous_version_id, action, triggered_by, reason, experiment_id)
     SELECT $1, (SELECT id FROM model_versions WHERE status = 'active'), $2, $3, $4, $5`,
    [input.versionId, input.action, input.triggeredBy, input.reason, input.experimentId],
  );
  if (input.action === 'canary_rollback') {
    await client.query('UPDATE model_versions SET status_reason = $2 WHERE id = $1', [
      input.versionId,
      input.reason,
    ]);
  }
}

/** An activation as written: the version, its log entry and the retired version's reason. */
export interface ActivationWrite {
  readonly id: string;
  readonly action: ActivationAction;
  readonly triggeredBy: string;
  readonly reason: string;
  /** For rollbacks: what a later rollback from `id` goes back to. */
  readonly previousOverride?: string | null;
  readonly retiredReason: string;
  /** The canary experiment that promoted it. */
  readonly experimentId?: string;
}

/**
 * Makes `input.id` the active version, retires the one before, logs it and notifies the
 * replicas, in the caller's transaction (an experiment's end promotes its arm in its own).
 */
export async function activateIn(
  client: PoolClient,
  input: ActivationWrite,
): Promise<{ previousId: string | null }> {
  // Serialises activations: two at once would both retire the same row and trip the unique index.
  await client.query('SELECT pg_advisory_xact_lock($1)', [TRAINING_LOCK_KEY + 1]);
  const current = await client.query<{ id: string }>(
    "SELECT id FROM model_versions WHERE status = 'active'",
  );
  const previousId = current.rows.at(0)?.id ?? null;
  if (previousId === input.id) return { previousId };
  if (previousId !== null) {
    await client.query(
      "UPDATE model_versions SET status = 'retired', status_reason = $2 WHERE id = $1",
      [previousId, input.retiredReason],
    );
  }
  await client.query(
    `UPDATE model_versions SET status = 'active', status_reason = $2, activated_at = now()
      WHERE id = $1`,
    [input.id, input.reason],
  );
  await client.query(
    `INSERT INTO model_activations
       (version_id, previous_version_id, action, triggered_by, reason, experiment_id)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [
      input.id,
      input.previousOverride === undefined ? previousId : input.previousOverride,
      input.action,
      input.triggeredBy,
      input.reason,
      input.experimentId ?? null,
    ],
  );
  await client.query('SELECT pg_notify($1, $2)', [ACTIVATION_CHANNEL, input.id]);
  return { previousId };
}

interface ActivationRow {
  id: string;
  version_id: string;
  previous_version_id: string | null;
  action: ActivationAction | CanaryAction;
  reason: string | null;
  experiment_id: string | null;
  triggered_by: string;
  created_at: Date;
}

const toActivation = (row: ActivationRow): Activation => ({
  id: row.id,
  versionId: row.version_id,
  previousVersionId: row.previous_version_id,
  action: row.action,
  reason: row.reason,
  experimentId: row.experiment_id,
  triggeredBy: row.triggered_by,
  createdAt: row.created_at,
});

/** Registry SQL: versions, runs, activations and the training lock. */
@Injectable()
export class RegistryRepository {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    /** The training lock is a session lock: a transaction-mode pooler would drop it. */
    @Inject(PG_DIRECT_POOL) private readonly directPool: Pool,
  ) {}

  async getVersion(id: string): Promise<ModelVersion | null> {
    const result = await this.pool.query<VersionRecord>(`${VERSION_SELECT} WHERE v.id = $1`, [id]);
    const row = result.rows.at(0);
    return row ? toVersion(row) : null;
  }

  async activeVersion(): Promise<ModelVersion | null> {
    const result = await this.pool.query<VersionRecord>(
      `${VERSION_SELECT} WHERE v.status = 'active'`,
    );
    const row = result.rows.at(0);
    return row ? toVersion(row) : null;
  }

  /** Only the id: what every replica polls. */
  async activeVersionId(): Promise<string | null> {
    const result = await this.pool.query<{ id: string }>(
      "SELECT id FROM model_versions WHERE status = 'active'",
    );
    return result.rows.at(0)?.id ?? null;
  }

  async listVersions(first: number): Promise<ModelVersion[]> {
    const result = await this.pool.query<VersionRecord>(
      `${VERSION_SELECT} ORDER BY v.id DESC LIMIT $1`,
      [first],
    );
    return result.rows.map(toVersion);
  }

  async insertTrainingVersion(input: {
    parentId: string | null;
    encoderId: string;
    triggeredBy: string;
  }): Promise<string> {
    const result = await this.pool.query<{ id: string }>(
      `INSERT INTO model_versions (parent_id, status, encoder_id, triggered_by)
       VALUES ($1, 'training', $2, $3) RETURNING id`,
      [input.parentId, input.encoderId, input.triggeredBy],
    );
    return result.rows.at(0)?.id ?? '';
  }

  /** Records what training produced; the version becomes a candidate (or failed). */
  async completeVersion(
    id: string,
    status: 'candidate' | 'failed',
    reason: string | null,
    fields: TrainedVersionFields,
  ): Promise<void> {
    await this.pool.query(
      `UPDATE model_versions
          SET status = $2, status_reason = $3, encoder_id = $4, backend = $5, train_from = $6,
              train_to = $7, valid_from = $8, valid_to = $9, train_samples = $10,
              valid_samples = $11, events_seq = $12, hyperparameters = $13, metrics = $14
        WHERE id = $1`,
      [
        id,
        status,
        reason,
        fields.encoderId,
        fields.backend,
        fields.trainWindow?.from ?? null,
        fields.trainWindow?.to ?? null,
        fields.validation.from,
        fields.validation.to,
        fields.trainSamples,
        fields.validSamples,
        fields.eventsSeq,
        JSON.stringify(fields.hyperparameters),
        JSON.stringify(sanitizeMetrics(fields.metrics)),
      ],
    );
  }

  async setVersionStatus(
    id: string,
    status: 'candidate' | 'failed',
    reason: string | null,
  ): Promise<void> {
    await this.pool.query(
      'UPDATE model_versions SET status = $2, status_reason = $3 WHERE id = $1',
      [id, status, reason],
    );
  }

  /**
   * Makes `id` the active version in one transaction: the current one is retired, the change is
   * logged, and NOTIFY (delivered on commit) tells every replica. Returns the previously active id.
   */
  async activate(input: ActivationWrite): Promise<{ previousId: string | null }> {
    return inTransaction(this.pool, (client) => activateIn(client, input));
  }

  /** What was active before `versionId` last became active (following rollbacks back). */
  async previousOf(versionId: string): Promise<string | null> {
    const result = await this.pool.query<{ previous_version_id: string | null }>(
      `SELECT previous_version_id FROM model_activations
        WHERE version_id = $1 AND action NOT IN ('canary_start', 'canary_rollback')
        ORDER BY id DESC LIMIT 1`,
      [versionId],
    );
    return result.rows.at(0)?.previous_version_id ?? null;
  }

  /** The activation log, newest first. */
  async activations(first: number): Promise<Activation[]> {
    const { rows } = await this.pool.query<ActivationRow>(
      `SELECT id, version_id, previous_version_id, action, reason, experiment_id, triggered_by,
              created_at
         FROM model_activations ORDER BY id DESC LIMIT $1`,
      [first],
    );
    return rows.map(toActivation);
  }

  /** Events after `afterSeq` (all when null), counted up to `cap`, and the newest seq. */
  async newEvents(
    afterSeq: string | null,
    cap: number,
  ): Promise<{ count: number; maxSeq: string }> {
    const result = await this.pool.query<{ count: number; max_seq: string | null }>(
      `SELECT (SELECT count(*)::int FROM (
                 SELECT 1 FROM events WHERE seq > $1 ORDER BY seq LIMIT $2) recent) AS count,
              (SELECT max(seq) FROM events) AS max_seq`,
      [afterSeq ?? '0', cap],
    );
    const row = result.rows.at(0);
    return { count: row?.count ?? 0, maxSeq: row?.max_seq ?? '0' };
  }

  /** Whether a click arrived after `afterSeq` (at all when null). */
  async clickedAfter(afterSeq: string | null): Promise<boolean> {
    const result = await this.pool.query<{ clicked: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM events WHERE seq > $1 AND type = 'click') AS clicked`,
      [afterSeq ?? '0'],
    );
    return result.rows.at(0)?.clicked === true;
  }

  /**
   * The cross-process training lock: a session advisory lock on a connection held for the whole
   * run, so it is released even when the process dies. Null when another trainer holds it.
   */
  async tryTrainingLock(): Promise<TrainingLock | null> {
    const client = await this.directPool.connect();
    try {
      const result = await client.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock($1) AS locked',
        [TRAINING_LOCK_KEY],
      );
      if (result.rows.at(0)?.locked !== true) {
        client.release();
        return null;
      }
    } catch (error) {
      client.release(error instanceof Error ? error : true);
      throw error;
    }
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        try {
          await client.query('SELECT pg_advisory_unlock($1)', [TRAINING_LOCK_KEY]);
          client.release();
        } catch (error) {
          // A broken connection drops the lock with it; discard the client.
          client.release(error instanceof Error ? error : true);
        }
      },
    };
  }

  /**
   * Runs left running by a trainer that died, and their versions; only called while holding the
   * lock (so no live trainer owns them). Queued runs wait for the next trainer.
   */
  async failAbandonedRuns(): Promise<number> {
    return failAbandoned(this.pool);
  }

  /**
   * Records a queued run and wakes the trainers (NOTIFY on commit). Null when a run is already
   * queued or running: a unique index allows one unfinished run at a time. A run left running by
   * a trainer that died (nobody holds the training lock) is marked failed first, so it does not
   * block the queue until the next trainer starts.
   */
  async enqueueRun(mode: TrainingMode, triggeredBy: string): Promise<TrainingRun | null> {
    try {
      return await inTransaction(this.pool, async (client) => {
        const free = await client.query<{ free: boolean }>(
          'SELECT pg_try_advisory_xact_lock($1) AS free',
          [TRAINING_LOCK_KEY],
        );
        if (free.rows[0].free) await failAbandoned(client);
        const result = await client.query<RunRecord>(
          `INSERT INTO training_runs (mode, status, triggered_by)
           VALUES ($1, 'queued', $2) RETURNING ${RUN_COLUMNS}`,
          [mode, triggeredBy],
        );
        const run = toRun(result.rows[0]);
        await client.query('SELECT pg_notify($1, $2)', [TRAINING_QUEUE_CHANNEL, run.id]);
        return run;
      });
    } catch (error) {
      if (error instanceof DatabaseError && error.code === '23505') return null;
      throw error;
    }
  }

  /** Marks the oldest queued run running and returns it; null when none is queued. */
  async claimQueuedRun(): Promise<TrainingRun | null> {
    const result = await this.pool.query<RunRecord>(
      `UPDATE training_runs SET status = 'running', started_at = now(), waiting_for = NULL
        WHERE id = (SELECT id FROM training_runs WHERE status = 'queued'
                     ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING ${RUN_COLUMNS}`,
    );
    const row = result.rows.at(0);
    return row ? toRun(row) : null;
  }

  /** Records why a queued run has not started yet (while it is still queued). */
  async noteRunWaiting(id: string, reason: string): Promise<void> {
    await this.pool.query(
      `UPDATE training_runs SET waiting_for = $2 WHERE id = $1 AND status = 'queued'`,
      [id, reason],
    );
  }

  async updateRun(
    id: string,
    fields: { progress?: number; versionId?: string; mode?: TrainingMode },
  ): Promise<void> {
    await this.pool.query(
      `UPDATE training_runs SET progress = coalesce($2, progress),
              version_id = coalesce($3, version_id), mode = coalesce($4, mode)
        WHERE id = $1`,
      [id, fields.progress ?? null, fields.versionId ?? null, fields.mode ?? null],
    );
  }

  /** Appends a finished epoch to the run's record. */
  async appendRunEpoch(id: string, epoch: RunEpoch): Promise<void> {
    await this.pool.query('UPDATE training_runs SET epochs = epochs || $2::jsonb WHERE id = $1', [
      id,
      JSON.stringify([epoch]),
    ]);
  }

  async finishRun(
    id: string,
    status: 'succeeded' | 'failed',
    fields: { outcome: string; error?: string | null },
  ): Promise<void> {
    await this.pool.query(
      `UPDATE training_runs
          SET status = $2, outcome = $3, error = $4, finished_at = now(),
              progress = CASE WHEN $2 = 'succeeded' THEN 1 ELSE progress END
        WHERE id = $1`,
      [id, status, fields.outcome, fields.error ?? null],
    );
  }

  async unfinishedRun(): Promise<TrainingRun | null> {
    const result = await this.pool.query<RunRecord>(
      `SELECT ${RUN_COLUMNS} FROM training_runs WHERE status IN ('queued', 'running')`,
    );
    const row = result.rows.at(0);
    return row ? toRun(row) : null;
  }

  async listRuns(first: number): Promise<TrainingRun[]> {
    const result = await this.pool.query<RunRecord>(
      `SELECT ${RUN_COLUMNS} FROM training_runs ORDER BY id DESC LIMIT $1`,
      [first],
    );
    return result.rows.map(toRun);
  }

  async getRun(id: string): Promise<TrainingRun | null> {
    const result = await this.pool.query<RunRecord>(
      `SELECT ${RUN_COLUMNS} FROM training_runs WHERE id = $1`,
      [id],
    );
    const row = result.rows.at(0);
    return row ? toRun(row) : null;
  }
}

/** jsonb cannot hold NaN or Infinity; a failed version keeps them as null. */
function sanitizeMetrics(metrics: ModelMetrics): Record<string, number | null> {
  return Object.fromEntries(
    Object.entries(metrics).map(([name, value]) => [name, Number.isFinite(value) ? value : null]),
  );
}

/** Marks runs left running, and versions left training, failed; returns how many runs. */
async function failAbandoned(db: Pick<Pool, 'query'>): Promise<number> {
  const result = await db.query(
    `UPDATE training_runs SET status = 'failed', error = 'abandoned: the trainer stopped',
            finished_at = now()
      WHERE status = 'running'`,
  );
  await db.query(
    `UPDATE model_versions SET status = 'failed', status_reason = 'abandoned: the trainer stopped'
      WHERE status = 'training'`,
  );
  return result.rowCount ?? 0;
}
