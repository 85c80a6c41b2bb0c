import { Inject, Injectable } from '@nestjs/common';
import { DatabaseError, Pool } from 'pg';
import { DAY_MS } from '../../common/daily-partitions';
import { DomainError } from '../../common/errors';
import { inTransaction } from '../../infra/postgres';
import { PG_POOL } from '../../infra/tokens';
import {
  ACTIVATION_CHANNEL,
  activateIn,
  ActivationWrite,
  CanaryLog,
  insertCanaryLog,
} from '../registry/registry.repository';
import type {
  Arm,
  Experiment,
  ExperimentKind,
  ExperimentStatus,
  NewExperiment,
} from './experiment';

/** What ending an experiment also writes, in the same transaction (see `stop`). */
export interface StopEffects {
  /** Copied into the `default` profile. */
  readonly promoteProfile?: string;
  /** The canary's end, logged next to the activations. */
  readonly canaryLog?: CanaryLog;
  /** The promoted arm's version, made active. */
  readonly activate?: ActivationWrite;
}

interface ExperimentRow {
  id: string;
  name: string;
  kind: ExperimentKind;
  status: ExperimentStatus;
  salt: string;
  arms: Arm[];
  min_impressions: number;
  min_detectable_lift: number;
  confidence: number;
  power: number;
  outcome: string | null;
  outcome_reason: string | null;
  created_by: string;
  created_at: Date;
  started_at: Date | null;
  stopped_at: Date | null;
}

const COLUMNS = `id, name, kind, status, salt, arms, min_impressions, min_detectable_lift, confidence,
  power, outcome, outcome_reason, created_by, created_at, started_at, stopped_at`;

const toExperiment = (row: ExperimentRow): Experiment => ({
  id: row.id,
  name: row.name,
  kind: row.kind,
  status: row.status,
  salt: row.salt,
  arms: row.arms,
  minImpressions: row.min_impressions,
  minDetectableLift: row.min_detectable_lift,
  confidence: row.confidence,
  power: row.power,
  outcome: row.outcome,
  outcomeReason: row.outcome_reason,
  createdBy: row.created_by,
  createdAt: row.created_at,
  startedAt: row.started_at,
  stoppedAt: row.stopped_at,
});

/** What the served-slate log and the events it earned count for one arm (or one version). */
export interface OutcomeCounts {
  /** Slates served. */
  readonly slates: number;
  /** Items shown: the request's impression events, or its logged items where it sent none. */
  readonly impressions: number;
  /** Distinct items clicked (at most the impressions of the request). */
  readonly clicks: number;
  readonly addToCarts: number;
  readonly purchases: number;
}

interface CountsRow {
  key: string;
  slates: number;
  impressions: string;
  clicks: string;
  carts: string;
  purchases: string;
}

/**
 * Per-slate outcomes: each served slate (the CTE `slates` of request_id, key, logged) joined with
 * the events that carry its request id, from $4 on; grouped by key. Clicks, carts and purchases
 * count distinct items, at most as many as the slate showed, so every rate is a proportion.
 */
const OUTCOMES_BY_KEY = `
  outcomes AS (
    SELECT e.request_id,
           count(DISTINCT e.item_id) FILTER (WHERE e.type = 'impression') AS impressions,
           count(DISTINCT e.item_id) FILTER (WHERE e.type = 'click') AS clicks,
           count(DISTINCT e.item_id) FILTER (WHERE e.type = 'add_to_cart') AS carts,
           count(DISTINCT e.item_id) FILTER (WHERE e.type = 'purchase') AS purchases
      FROM events e JOIN slates s ON s.request_id = e.request_id
     WHERE e.ts >= $4
     GROUP BY e.request_id
  ),
  shown AS (
    SELECT s.key,
           CASE WHEN o.impressions > 0 THEN o.impressions ELSE s.logged END AS impressions,
           coalesce(o.clicks, 0) AS clicks, coalesce(o.carts, 0) AS carts,
           coalesce(o.purchases, 0) AS purchases
      FROM slates s LEFT JOIN outcomes o USING (request_id)
  )
  SELECT key, count(*)::int AS slates, sum(impressions)::bigint AS impressions,
         sum(least(clicks, impressions))::bigint AS clicks,
         sum(least(carts, impressions))::bigint AS carts,
         sum(least(purchases, impressions))::bigint AS purchases
    FROM shown GROUP BY key`;

/**
 * How far before the first slate its events are read: an event is stamped by its producer's
 * clock, which may run behind the server's. Bounded by a value, the join plans over the days
 * from there on only, not every retained day of `events`.
 */
const PRODUCER_CLOCK_SLACK_MS = DAY_MS;

const eventsFrom = (since: Date): Date => new Date(since.getTime() - PRODUCER_CLOCK_SLACK_MS);

const toCounts = (row: CountsRow): OutcomeCounts => ({
  slates: row.slates,
  impressions: Number(row.impressions),
  clicks: Number(row.clicks),
  addToCarts: Number(row.carts),
  purchases: Number(row.purchases),
});

/**
 * Experiments' SQL. Starting, stopping and promoting NOTIFY the activation channel: replicas
 * reload the versions they serve at once, as for an activation. Profile arms are checked against
 * `ranking_profiles` and promoted into its `default` row here, in the same transaction as the
 * experiment's end.
 */
@Injectable()
export class ExperimentsRepository {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  async list(first: number): Promise<Experiment[]> {
    const { rows } = await this.pool.query<ExperimentRow>(
      `SELECT ${COLUMNS} FROM experiments ORDER BY id DESC LIMIT $1`,
      [first],
    );
    return rows.map(toExperiment);
  }

  async get(id: string): Promise<Experiment | null> {
    const { rows } = await this.pool.query<ExperimentRow>(
      `SELECT ${COLUMNS} FROM experiments WHERE id = $1`,
      [id],
    );
    const row = rows.at(0);
    return row === undefined ? null : toExperiment(row);
  }

  async running(): Promise<Experiment | null> {
    const { rows } = await this.pool.query<ExperimentRow>(
      `SELECT ${COLUMNS} FROM experiments WHERE status = 'running'`,
    );
    const row = rows.at(0);
    return row === undefined ? null : toExperiment(row);
  }

  /** The profiles of `names` that do not exist (`default` always does). */
  async missingProfiles(names: readonly string[]): Promise<string[]> {
    const { rows } = await this.pool.query<{ name: string }>(
      'SELECT name FROM ranking_profiles WHERE name = ANY($1)',
      [names],
    );
    const found = new Set(rows.map((row) => row.name));
    return names.filter((name) => name !== 'default' && !found.has(name));
  }

  /** A new experiment; `running` starts it at once (a canary). CONFLICT on a taken name. */
  async create(
    input: NewExperiment,
    status: 'draft' | 'running',
    createdBy: string,
    canaryLog?: Omit<CanaryLog, 'experimentId'>,
  ): Promise<Experiment> {
    return this.conflicts(() =>
      inTransaction(this.pool, async (client) => {
        const { rows } = await client.query<ExperimentRow>(
          `WITH created AS (
           INSERT INTO experiments (name, kind, status, salt, arms, min_impressions,
                                    min_detectable_lift, confidence, power, created_by, started_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                   CASE WHEN $3 = 'running' THEN now() END)
           RETURNING ${COLUMNS})
         SELECT created.*, pg_notify($11, 'experiment') FROM created`,
          [
            input.name,
            input.kind,
            status,
            input.salt,
            JSON.stringify(input.arms),
            input.minImpressions,
            input.minDetectableLift,
            input.confidence,
            input.power,
            createdBy,
            ACTIVATION_CHANNEL,
          ],
        );
        const created = toExperiment(rows[0]);
        // In the same transaction: nobody reads a running canary without its log entry.
        if (canaryLog !== undefined) {
          await insertCanaryLog(client, { ...canaryLog, experimentId: created.id });
        }
        return created;
      }),
    );
  }

  /** Draft to running; null when it is not a draft. CONFLICT while another one runs. */
  async start(id: string): Promise<Experiment | null> {
    return this.conflicts(async () => {
      const { rows } = await this.pool.query<ExperimentRow>(
        `WITH started AS (
           UPDATE experiments SET status = 'running', started_at = now()
            WHERE id = $1 AND status = 'draft' RETURNING ${COLUMNS})
         SELECT started.*, pg_notify($2, 'experiment') FROM started`,
        [id, ACTIVATION_CHANNEL],
      );
      const row = rows.at(0);
      return row === undefined ? null : toExperiment(row);
    });
  }

  /**
   * Running to stopped with its outcome; null when it was not running (another replica or call
   * ended it first: only one caller records an outcome). In the same transaction,
   * `promoteProfile` copies that profile into `default`, `canaryLog` logs the canary's end and
   * `activate` activates the promoted arm's version, so that nobody reads a stopped experiment
   * without what its end did, and a crash cannot split them.
   */
  async stop(
    id: string,
    outcome: string,
    reason: string,
    effects: StopEffects = {},
  ): Promise<Experiment | null> {
    const { promoteProfile, canaryLog, activate } = effects;
    return inTransaction(this.pool, async (client) => {
      const { rows } = await client.query<ExperimentRow>(
        `UPDATE experiments
            SET status = 'stopped', stopped_at = now(), outcome = $2, outcome_reason = $3
          WHERE id = $1 AND status = 'running' RETURNING ${COLUMNS}`,
        [id, outcome, reason],
      );
      const row = rows.at(0);
      if (row === undefined) return null;
      if (promoteProfile !== undefined && promoteProfile !== 'default') {
        await client.query(
          `INSERT INTO ranking_profiles
             (name, weights, boosts, recency_half_life_days, scoring, updated_at)
           SELECT 'default', weights, boosts, recency_half_life_days, scoring, now()
             FROM ranking_profiles WHERE name = $1
           ON CONFLICT (name) DO UPDATE SET weights = EXCLUDED.weights, boosts = EXCLUDED.boosts,
             recency_half_life_days = EXCLUDED.recency_half_life_days,
             scoring = EXCLUDED.scoring, updated_at = now()`,
          [promoteProfile],
        );
      }
      if (canaryLog !== undefined) await insertCanaryLog(client, canaryLog);
      if (activate !== undefined) await activateIn(client, activate);
      await client.query('SELECT pg_notify($1, $2)', [ACTIVATION_CHANNEL, 'experiment']);
      return toExperiment(row);
    });
  }

  /** Outcome counts per arm of the experiment's slates served from `since` until before `until`. */
  async armCounts(
    experimentId: string,
    since: Date,
    until: Date,
  ): Promise<Map<string, OutcomeCounts>> {
    const { rows } = await this.pool.query<CountsRow>(
      `WITH slates AS (
         SELECT request_id, arm AS key, cardinality(item_ids) AS logged FROM served_slates
          WHERE experiment_id = $1 AND served_at >= $2 AND served_at < $3),
       ${OUTCOMES_BY_KEY}`,
      [experimentId, since, until, eventsFrom(since)],
    );
    return new Map(rows.map((row) => [row.key, toCounts(row)]));
  }

  /** Outcome counts of the slates a version served from `since` until before `until`, any arm. */
  async versionCounts(
    versionId: string,
    since: Date,
    until: Date,
  ): Promise<OutcomeCounts | undefined> {
    const { rows } = await this.pool.query<CountsRow>(
      `WITH slates AS (
         SELECT request_id, '' AS key, cardinality(item_ids) AS logged FROM served_slates
          WHERE model_version = $1 AND served_at >= $2 AND served_at < $3),
       ${OUTCOMES_BY_KEY}`,
      [versionId, since, until, eventsFrom(since)],
    );
    const row = rows.at(0);
    return row === undefined ? undefined : toCounts(row);
  }

  /** Unique violations as CONFLICT: a taken name, or a second running experiment. */
  private async conflicts<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof DatabaseError && error.code === '23505') {
        throw new DomainError(
          'CONFLICT',
          error.constraint === 'experiments_one_running_idx'
            ? 'another experiment is running (one at a time); stop it first'
            : 'an experiment with this name exists',
          { constraint: error.constraint ?? null },
        );
      }
      throw error;
    }
  }
}
