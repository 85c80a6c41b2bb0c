import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { DomainError, ValidationError } from '../../common/errors';
import { idProblem } from '../../common/ids';
import type { Logger } from '../../common/logger';
import { WarningThrottle } from '../../common/logger';
import { andThen, bothOf, MaybePromise } from '../../common/maybe-async';
import { withTimeout } from '../../common/timeout';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { OnlineStateReader } from '../online-state/online-state.reader';
import type { Interaction } from '../online-state/online-state.store';
import type { ItemTable } from '../serving/item-table';
import type { Assignment } from '../experiments/experiment-assignment.service';
import { ExperimentAssignment } from '../experiments/experiment-assignment.service';
import type { HistoryVector, ServedModel, Serving } from '../serving/served-model';
import { ServingService } from '../serving/serving.service';
import type { ServedSlate } from '../served-log/served-slate';
import { ServedSlateRecorder } from '../served-log/served-slate.recorder';
import { dot } from '../serving/top-k';
import { FEATURE_PARTS, SCORE_PARTS } from './features';
import { merge, PartTable, ScorePart } from './merge';
import { FeatureValue, isCallerFeatureName, RankingProfile } from './profile';
import { ProfileService } from './profile.service';
import { RankingMetrics, RankingOperation } from './ranking.metrics';
import { LocalUserVectors } from './local-user-vectors';
import { Abandon } from './abandon';
import { UserVectorCacheRepository } from './user-vector-cache.repository';

/** As the GraphQL input arrives: absent optional fields may be null or undefined. */
export interface Candidate {
  readonly itemId: string;
  readonly text?: string | null;
  readonly features?: readonly FeatureValue[] | null;
}

/** Who asks: the request id answers carry, and what pays for work beyond the call itself. */
export interface RankingRequest {
  readonly requestId: string;
  /** An experiment arm to serve instead of the user's own (ops QA). */
  readonly forcedArm?: string;
  /** Charges `units` (one per candidate text to encode) to the caller; throws when it cannot pay. */
  readonly charge?: (units: number) => void;
}

export interface RankedItem {
  readonly itemId: string;
  readonly rank: number;
  readonly score: number;
  readonly parts: ScorePart[];
}

/** A ranked item whose parts are built only when a caller selects them. */
class RankedEntry implements RankedItem {
  constructor(
    readonly itemId: string,
    readonly rank: number,
    private readonly table: PartTable,
    private readonly index: number,
  ) {}

  get score(): number {
    return this.table.scores[this.index];
  }

  get parts(): ScorePart[] {
    return this.table.parts(this.index);
  }
}

/**
 * Why an answer is less than the full model ranking:
 * - `no_model`: no served model; ranked by the profile without the model part.
 * - `cold_user`: no usable history; popularity prior instead of the model score.
 * - `online_state_from_postgres`: Redis unavailable; online state computed from PostgreSQL.
 * - `popularity_stale`: Redis unavailable; popularity from this replica's copy as it last synced.
 * - `encoder_unavailable`: candidate texts could not be encoded; those items got the prior.
 * - `user_vector_stale`: the user interacted and the new interest vector was late
 *   (RANK_STALE_USER_WAIT_MS); ranked with the one before.
 */
export type Degradation =
  | 'no_model'
  | 'cold_user'
  | 'online_state_from_postgres'
  | 'popularity_stale'
  | 'encoder_unavailable'
  | 'user_vector_stale';

export interface RankResult {
  readonly items: readonly RankedItem[];
  readonly modelVersion: string | null;
  /** The running experiment and the arm that served this answer; null outside one. */
  readonly experiment: string | null;
  readonly arm: string | null;
  readonly requestId: string;
  readonly degraded: readonly Degradation[];
}

const MAX_TEXT_LENGTH = 10_000;
const MAX_FEATURES = 64;

/** The inputs each served item is logged with, in order: the model score, then the features. */
const SERVED_INPUTS: readonly string[] = [
  SCORE_PARTS.model.name,
  ...FEATURE_PARTS.map((part) => part.name),
];

/** One request's merged candidates: the ranked entries and what the served-slate log reads. */
interface Scored {
  readonly ranked: RankedEntry[];
  readonly table: PartTable;
  readonly order: Int32Array;
  readonly modelScores: Float64Array;
}

/** What one request works with; taken once, so a hot swap never mixes versions in one answer. */
interface RequestState {
  readonly operation: RankingOperation;
  readonly userId: string;
  readonly request: RankingRequest;
  /** Aborted when the request times out: work queued for it is withdrawn. */
  readonly abandon: Abandon;
  readonly items: ItemTable;
  readonly served: ServedModel | undefined;
  readonly profile: RankingProfile;
  readonly assignment: Assignment | undefined;
  readonly degraded: Set<Degradation>;
  readonly nowMs: number;
}

interface UserSignal {
  readonly vector: Float32Array | undefined;
  /** Items the user interacted with, when they were read (recommend always reads them). */
  readonly interacted: readonly Interaction[] | undefined;
}

/** A rebuild of a just-interacted user's vector, shared by that user's requests meanwhile. */
interface Rebuild {
  /** Undefined when it failed: the requests waiting on it answer with the kept vector. */
  readonly built: Promise<UserSignal | undefined>;
  readonly degraded: ReadonlySet<Degradation>;
}

/**
 * `rank` and `recommend`: the served model's score of each candidate merged (merge.ts) with the
 * other features, all read by item-table row from the serving module.
 */
@Injectable()
export class RankingService {
  private readonly logger: Logger;
  private readonly metrics: RankingMetrics;
  /** Rebuilds in flight, by served version, vectors generation and user. */
  private readonly rebuilds = new Map<string, Rebuild>();
  private readonly rebuildWarnings = new WarningThrottle();

  constructor(
    private readonly serving: ServingService,
    private readonly online: OnlineStateReader,
    private readonly userVectors: UserVectorCacheRepository,
    private readonly localVectors: LocalUserVectors,
    private readonly profiles: ProfileService,
    private readonly servedLog: ServedSlateRecorder,
    private readonly experiments: ExperimentAssignment,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
  ) {
    this.logger = logger.child({ component: 'ranking' });
    this.metrics = new RankingMetrics(metrics);
  }

  rank(
    userId: string,
    candidates: readonly Candidate[],
    profileName: string | undefined,
    request: RankingRequest,
  ): Promise<RankResult> {
    return this.observe('rank', (abandon) => {
      validateUserId(userId);
      this.validateCandidates(candidates);
      const rows = this.candidateRows('rank', candidates);
      refuseRepeats(candidates, rows);
      // For a user and candidates this replica holds, nothing below waits: no promise, no turn
      // of the event loop between the steps.
      return andThen(this.requestState('rank', userId, profileName, request, abandon), (state) =>
        andThen(
          bothOf(this.userSignal(state, userId, false), this.popularity(state, candidates, rows)),
          ([user, popularity]) =>
            andThen(this.score(state, user.vector, candidates, rows, popularity), (scored) =>
              this.result(state, scored, scored.ranked.length),
            ),
        ),
      );
    });
  }

  recommend(
    userId: string,
    first: number,
    exclude: readonly string[],
    category: string | undefined,
    request: RankingRequest,
  ): Promise<RankResult> {
    return this.observe('recommend', async (abandon) => {
      validateUserId(userId);
      const { recommendMax, maxCandidates, recommendPool } = this.config.ranking;
      if (!Number.isInteger(first) || first < 1 || first > recommendMax) {
        throw new ValidationError('first', `must be between 1 and ${recommendMax}`);
      }
      if (exclude.length > maxCandidates) {
        throw new ValidationError('exclude', `at most ${maxCandidates} ids`);
      }
      const state = await this.requestState('recommend', userId, undefined, request, abandon);
      const user = await this.userSignal(state, userId, true);
      const excluded = new Set(exclude);
      for (const interaction of user.interacted ?? []) excluded.add(interaction.itemId);
      const { items } = state;
      const acceptRow = (row: number) =>
        !items.deleted(row) &&
        !excluded.has(items.id(row)) &&
        (category === undefined || items.category(row) === category);
      const accept = (itemId: string) => {
        const row = items.row(itemId);
        return row < 0 ? !excluded.has(itemId) && category === undefined : acceptRow(row);
      };
      const pool = Math.max(first, recommendPool);
      const ids = await this.metrics.time('recommend', 'retrieval', () =>
        this.retrieve(state, user.vector, pool, acceptRow, accept),
      );
      const candidates = ids.map((itemId) => ({ itemId }));
      const rows = this.candidateRows('recommend', candidates);
      const popularity = await this.popularity(state, candidates, rows);
      const scored = await this.score(state, user.vector, candidates, rows, popularity);
      return this.result(state, scored, first);
    });
  }

  private async observe(
    operation: RankingOperation,
    work: (abandon: Abandon) => MaybePromise<RankResult>,
  ): Promise<RankResult> {
    const started = performance.now();
    const abandon = new Abandon();
    let outcome = 'error';
    try {
      const answer = work(abandon);
      // An answer at hand waited for nothing: no timer to set.
      const result =
        answer instanceof Promise
          ? await withTimeout(answer, this.config.ranking.timeoutMs, operation)
          : answer;
      outcome = result.degraded.length > 0 ? 'degraded' : 'ok';
      for (const reason of result.degraded) this.metrics.degraded.inc({ reason });
      return result;
    } catch (error) {
      // Nobody waits for this answer any more: withdraw what is still queued for it.
      abandon.abort(error);
      throw error;
    } finally {
      this.metrics.operation.observe({ operation, outcome }, (performance.now() - started) / 1000);
    }
  }

  private requestState(
    operation: RankingOperation,
    userId: string,
    profileName: string | undefined,
    request: RankingRequest,
    abandon: Abandon,
  ): MaybePromise<RequestState> {
    const { serving, assignment } = this.armServing(operation, userId, request.forcedArm);
    return andThen(this.profiles.get(assignment?.arm.profile ?? profileName), (profile) => {
      const { items, served } = serving;
      const degraded = new Set<Degradation>();
      if (served === undefined) degraded.add('no_model');
      return {
        operation,
        userId,
        request,
        abandon,
        items,
        served,
        profile,
        assignment,
        degraded,
        nowMs: Date.now(),
      };
    });
  }

  /**
   * What the user's experiment arm serves: its version (the active one when it names none) and
   * the assignment; outside an experiment, or while the arm's version is not loaded here, the
   * active version and no assignment. `recommend` takes the active version only once it can
   * retrieve with an index (ServingService.forRetrieval).
   */
  private armServing(
    operation: RankingOperation,
    userId: string,
    forcedArm: string | undefined,
  ): { serving: Serving; assignment: Assignment | undefined } {
    const active = operation === 'recommend' ? this.serving.forRetrieval() : this.serving.current();
    const assignment = this.experiments.assign(userId, forcedArm);
    if (assignment === undefined) return { serving: active, assignment };
    const { modelVersion } = assignment.arm;
    const serving = modelVersion === null ? active : this.serving.version(modelVersion);
    if (serving === undefined) {
      this.experiments.unavailable(assignment);
      return { serving: active, assignment: undefined };
    }
    this.experiments.served(assignment);
    return { serving, assignment };
  }

  /** The answer: the first `shown` ranked items, logged as the served slate. */
  private result(state: RequestState, scored: Scored, shown: number): RankResult {
    const items = scored.ranked.length > shown ? scored.ranked.slice(0, shown) : scored.ranked;
    const depth = Math.min(items.length, this.servedLog.depth);
    if (depth > 0) this.servedLog.record(this.servedSlate(state, scored, depth));
    return {
      items,
      modelVersion: state.served?.versionId ?? null,
      experiment: state.assignment?.experiment.name ?? null,
      arm: state.assignment?.arm.name ?? null,
      requestId: state.request.requestId,
      degraded: [...state.degraded],
    };
  }

  /** The answer's first `depth` items as the served-slate log keeps them. */
  private servedSlate(state: RequestState, scored: Scored, depth: number): ServedSlate {
    const { table, order, modelScores } = scored;
    const width = SERVED_INPUTS.length;
    const itemIds = new Array<string>(depth);
    const numbers = new Float64Array(depth * (1 + width));
    const scores = numbers.subarray(0, depth);
    const values = numbers.subarray(depth);
    for (let p = 0; p < depth; p++) {
      const index = order[p];
      itemIds[p] = scored.ranked[p].itemId;
      scores[p] = table.scores[index];
      // The model's own score (NaN when the prior stood in), then each feature's input.
      values[p * width] = modelScores[index];
      const from = index * table.width;
      for (let f = 1; f < width; f++) values[p * width + f] = table.inputs[from + f];
    }
    return {
      requestId: state.request.requestId,
      userId: state.userId,
      operation: state.operation,
      servedAt: state.nowMs,
      modelVersion: state.served?.versionId ?? null,
      profile: state.profile.name,
      // A forced arm is QA looking, not a user of the arm: it stays out of the arm's figures.
      experiment:
        state.assignment === undefined || state.assignment.forced
          ? null
          : { id: state.assignment.experiment.id, arm: state.assignment.arm.name },
      candidates: order.length,
      features: SERVED_INPUTS,
      itemIds,
      scores,
      values,
    };
  }

  private validateCandidates(candidates: readonly Candidate[]): void {
    const max = this.config.ranking.maxCandidates;
    if (candidates.length > max) {
      throw new ValidationError(
        'candidates',
        `at most ${max} candidates (got ${candidates.length})`,
      );
    }
    candidates.forEach((candidate, i) => {
      const itemIdProblem = idProblem(candidate.itemId);
      if (itemIdProblem !== undefined) {
        throw new ValidationError(`candidates[${i}].itemId`, itemIdProblem);
      }
      if (candidate.text != null && candidate.text.length > MAX_TEXT_LENGTH) {
        throw new ValidationError(`candidates[${i}].text`, `at most ${MAX_TEXT_LENGTH} characters`);
      }
      const features = candidate.features;
      if (features == null || features.length === 0) return;
      const field = `candidates[${i}]`;
      if (features.length > MAX_FEATURES) {
        throw new ValidationError(`${field}.features`, `at most ${MAX_FEATURES} features`);
      }
      const names = new Set<string>();
      features.forEach((feature, j) => {
        if (!isCallerFeatureName(feature.name)) {
          throw new ValidationError(
            `${field}.features[${j}].name`,
            'must be 1-64 letters, digits, "_", "." or "-"',
          );
        }
        if (names.has(feature.name)) {
          throw new ValidationError(`${field}.features[${j}].name`, 'duplicate feature name');
        }
        names.add(feature.name);
        if (!Number.isFinite(feature.value)) {
          throw new ValidationError(`${field}.features[${j}].value`, 'must be finite');
        }
      });
    });
  }

  /**
   * The user's interest vector: from this replica's copy (LocalUserVectors) or the Redis cache
   * when it was built for this model at the user's current interest version (the ingest module
   * bumps it on every interaction) and no item of the history was embedded since, else pooled
   * from recent history and cached in both. `withHistory` also returns the interactions (and
   * skips the replica's copy: those need Redis anyway). For a user who interacted since the copy
   * built theirs, `rank` waits RANK_STALE_USER_WAIT_MS at most for the new one (waitForRebuild).
   */
  private userSignal(
    state: RequestState,
    userId: string,
    withHistory: boolean,
  ): MaybePromise<UserSignal> {
    return this.metrics.time(state.operation, 'user_vector', (): MaybePromise<UserSignal> => {
      const { served } = state;
      const limit = withHistory ? this.config.online.recentCap : this.config.ranking.historyLength;
      if (served === undefined) {
        if (!withHistory) return { vector: undefined, interacted: undefined };
        return andThen(this.readRecent(state, userId, limit), (interacted) => ({
          vector: undefined,
          interacted,
        }));
      }
      if (withHistory || !this.localVectors.enabled) {
        return this.readOrBuild(state, userId, served, withHistory, limit);
      }
      const { versionId, vectors } = served;
      const kept = this.localVectors.get(userId, versionId, vectors.generation);
      this.metrics.cache.inc({ cache: 'user_vector_local', result: kept ? 'hit' : 'miss' });
      if (kept !== undefined) {
        this.metrics.cache.inc({ cache: 'user_vector', result: 'hit' });
        return { vector: kept, interacted: undefined };
      }
      const previous = this.localVectors.previous(userId, versionId, vectors.generation);
      if (previous === undefined || this.config.ranking.staleUserWaitMs === 0) {
        return this.readOrBuild(state, userId, served, false, limit);
      }
      return this.waitForRebuild(state, userId, served, limit, previous);
    });
  }

  /**
   * The rebuilt vector of a user who interacted, or, when it takes longer than
   * RANK_STALE_USER_WAIT_MS (Redis slow) or fails, `previous` (`user_vector_stale`): a slow Redis
   * then adds that wait to the answer, not its own. The rebuild goes on and is cached for the next
   * request; what it meets (PostgreSQL, no history) concerns the answer only when it is the answer.
   * A user's requests meanwhile wait on the same rebuild, and past RANK_STALE_REBUILDS_MAX
   * rebuilds in flight none is started: those users are answered with their kept vector at once.
   * While Redis is slow the rebuilds read PostgreSQL: unbounded, they once queued on its pool by
   * the hundred while the replica fell behind (docs/performance.md, "Rebuilds in flight bounded").
   */
  private async waitForRebuild(
    state: RequestState,
    userId: string,
    served: ServedModel,
    limit: number,
    previous: Float32Array,
  ): Promise<UserSignal> {
    const rebuild = this.rebuildOf(state, userId, served, limit);
    if (rebuild !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<undefined>((resolve) => {
        timer = setTimeout(resolve, this.config.ranking.staleUserWaitMs, undefined);
      });
      try {
        const first = await Promise.race([rebuild.built, late]);
        if (first !== undefined) {
          for (const reason of rebuild.degraded) state.degraded.add(reason);
          return first;
        }
      } finally {
        clearTimeout(timer);
      }
    }
    state.degraded.add('user_vector_stale');
    // The copy's own array, which the rebuild overwrites when it is done: the answer's is a copy.
    return { vector: previous.slice(), interacted: undefined };
  }

  /** The user's rebuild in flight, else a new one; undefined past RANK_STALE_REBUILDS_MAX. */
  private rebuildOf(
    state: RequestState,
    userId: string,
    served: ServedModel,
    limit: number,
  ): Rebuild | undefined {
    const key = `${served.versionId}\u0000${String(served.vectors.generation)}\u0000${userId}`;
    const running = this.rebuilds.get(key);
    if (running !== undefined) {
      this.metrics.rebuilds.inc({ result: 'joined' });
      return running;
    }
    if (this.rebuilds.size >= this.config.ranking.staleRebuildsMax) {
      this.metrics.rebuilds.inc({ result: 'skipped' });
      return undefined;
    }
    this.metrics.rebuilds.inc({ result: 'started' });
    // A state of its own: the rebuild outlives the request that started it.
    const degraded = new Set<Degradation>();
    const rebuildState = { ...state, abandon: new Abandon(), degraded };
    const built = this.readOrBuild(rebuildState, userId, served, false, limit).catch(
      (error: unknown) => {
        if (this.rebuildWarnings.allows()) {
          this.logger.warn({ err: error, userId }, 'a user vector rebuild failed');
        }
        return undefined;
      },
    );
    const rebuild = { built, degraded };
    this.rebuilds.set(key, rebuild);
    void built.finally(() => {
      if (this.rebuilds.get(key) === rebuild) this.rebuilds.delete(key);
    });
    return rebuild;
  }

  /** The user's vector from the Redis cache when current, else pooled from the history. */
  private async readOrBuild(
    state: RequestState,
    userId: string,
    served: ServedModel,
    withHistory: boolean,
    limit: number,
  ): Promise<UserSignal> {
    const { items } = state;
    const { vectors } = served;
    const ticket = this.localVectors.ticket();
    // A user who just interacted needs the history for a rebuild: read in the same round trip.
    const readHistory = withHistory || this.localVectors.interacted(userId);
    const [interestVersion, cached, history] = await Promise.all([
      this.online.interestVersion(userId),
      this.cachedVector(userId),
      readHistory ? this.readRecent(state, userId, limit) : Promise.resolve(undefined),
    ]);
    if (
      cached?.modelVersion === served.versionId &&
      cached.interestVersion === interestVersion &&
      (cached.vectorsGeneration === undefined || cached.vectorsGeneration === vectors.generation)
    ) {
      this.metrics.cache.inc({ cache: 'user_vector', result: 'hit' });
      this.localVectors.put(userId, ticket, cached);
      return { vector: cached.vector, interacted: history };
    }
    this.metrics.cache.inc({ cache: 'user_vector', result: 'miss' });
    const interactions = history ?? (await this.readRecent(state, userId, limit));
    const pooled: HistoryVector[] = [];
    let missing = 0;
    for (const interaction of interactions.slice(0, this.config.ranking.historyLength)) {
      const row = items.row(interaction.itemId);
      if (row < 0 || !vectors.has(row)) {
        missing++;
        continue;
      }
      pooled.push({ vector: vectors.vector(row), type: interaction.type, ts: interaction.ts });
    }
    if (pooled.length === 0) {
      state.degraded.add('cold_user');
      return { vector: undefined, interacted: interactions };
    }
    const vector = served.model.userVector(pooled);
    const built = {
      modelVersion: served.versionId,
      vectorsGeneration: missing > 0 ? vectors.generation : undefined,
      vector,
    };
    this.localVectors.put(userId, ticket, built);
    if (interestVersion !== undefined) this.cacheVector(userId, { ...built, interestVersion });
    return { vector, interacted: interactions };
  }

  /** Undefined without Redis (no cache then) or on a failed or slow read. */
  private cachedVector(userId: string) {
    return this.online.fromRedis(this.userVectors.serverOf(userId), () =>
      this.userVectors.get(userId),
    );
  }

  /** Best effort: a failed write only costs a recomputation next time. */
  private cacheVector(userId: string, entry: Parameters<UserVectorCacheRepository['put']>[1]) {
    if (!this.userVectors.available) return;
    this.userVectors.put(userId, entry).catch((error: unknown) => {
      this.online.warn(error);
    });
  }

  private async readRecent(state: RequestState, userId: string, limit: number) {
    const read = await this.online.recent(userId, limit);
    if (read.fromPostgres) state.degraded.add('online_state_from_postgres');
    return read.value;
  }

  /** Nearest items to the user vector; popular (then newest) items for cold users. */
  private async retrieve(
    state: RequestState,
    user: Float32Array | undefined,
    count: number,
    acceptRow: (row: number) => boolean,
    accept: (itemId: string) => boolean,
  ): Promise<string[]> {
    const { served, items } = state;
    if (served !== undefined && user !== undefined) {
      const found = await served.retrieval.nearest(
        user,
        count,
        acceptRow,
        items.size,
        state.abandon.signal,
      );
      return Array.from(found, (row) => items.id(row));
    }
    if (user === undefined && served !== undefined) state.degraded.add('cold_user');
    const popular = await this.serving.popularItems(count, accept);
    if (popular.fromPostgres) state.degraded.add('online_state_from_postgres');
    if (popular.fromStaleCopy) state.degraded.add('popularity_stale');
    if (popular.value.length >= count) return popular.value;
    const taken = new Set(popular.value);
    return [
      ...popular.value,
      ...items.newest(
        count - popular.value.length,
        (itemId) => !taken.has(itemId) && accept(itemId),
      ),
    ];
  }

  private popularity(
    state: RequestState,
    candidates: readonly Candidate[],
    rows: Int32Array,
  ): MaybePromise<Float64Array> {
    const read = this.metrics.time(state.operation, 'online_state', () =>
      this.serving.popularity(rows, state.nowMs, () =>
        candidates.map((candidate) => candidate.itemId),
      ),
    );
    return andThen(read, ({ value, fromPostgres, fromStaleCopy }) => {
      if (fromPostgres) state.degraded.add('online_state_from_postgres');
      if (fromStaleCopy) state.degraded.add('popularity_stale');
      return value;
    });
  }

  /**
   * The candidates' item-table rows (-1: an item this replica never heard of). Every version
   * serves by the rows of the one table.
   */
  private candidateRows(operation: RankingOperation, candidates: readonly Candidate[]): Int32Array {
    return this.metrics.timeSync(operation, 'item_vectors', () => {
      const rows = new Int32Array(candidates.length);
      this.serving.items.rowsOf(candidates.length, (i) => candidates[i].itemId, rows);
      return rows;
    });
  }

  private score(
    state: RequestState,
    user: Float32Array | undefined,
    candidates: readonly Candidate[],
    rows: Int32Array,
    popularity: Float64Array,
  ): MaybePromise<Scored> {
    return andThen(this.encodeUnknown(state, user, candidates, rows), (encoded) =>
      this.scoreEncoded(state, user, candidates, rows, popularity, encoded),
    );
  }

  /** The model scores merged with the features, once candidates' texts are encoded. */
  private scoreEncoded(
    state: RequestState,
    user: Float32Array | undefined,
    candidates: readonly Candidate[],
    rows: Int32Array,
    popularity: Float64Array,
    encoded: ReadonlyMap<number, Float32Array>,
  ): Scored {
    const { operation, items, profile, nowMs, served } = state;
    const modelScores = this.metrics.timeSync(operation, 'scoring', () =>
      modelScoresOf(state.served, user, candidates, rows, encoded),
    );
    return this.metrics.timeSync(operation, 'merge', () => {
      const count = candidates.length;
      const catalogFacts = new Float64Array(2 * count);
      const createdAtMs = catalogFacts.subarray(0, count);
      const price = catalogFacts.subarray(count);
      const category = new Array<string | undefined>(count);
      const itemIds = new Array<string>(count);
      const callerFeatures = new Array<readonly FeatureValue[] | null | undefined>(count);
      // Categories only matter to boosts; without any the category is not read at all.
      const boosted = profile.boosts.length > 0;
      for (let i = 0; i < count; i++) {
        const row = rows[i];
        itemIds[i] = candidates[i].itemId;
        callerFeatures[i] = candidates[i].features;
        createdAtMs[i] = row < 0 ? Number.NaN : items.createdAtMs(row);
        price[i] = row < 0 ? Number.NaN : items.price(row);
        category[i] = row < 0 || !boosted ? undefined : items.category(row);
      }
      const { table, order } = merge(
        { itemIds, popularity, createdAtMs, price, category, modelScores, callerFeatures },
        { profile, nowMs, combiner: served?.model.combiner },
      );
      const ranked = Array.from(
        order,
        (index, i) => new RankedEntry(itemIds[index], i + 1, table, index),
      );
      return { ranked, table, order, modelScores };
    });
  }

  /**
   * Vectors of the candidates without one that come with text (only with a user vector), by
   * candidate index; none to encode (the usual case), nothing to wait for.
   */
  private encodeUnknown(
    state: RequestState,
    user: Float32Array | undefined,
    candidates: readonly Candidate[],
    rows: Int32Array,
  ): MaybePromise<ReadonlyMap<number, Float32Array>> {
    const { served } = state;
    if (served === undefined || user === undefined) return NOTHING_ENCODED;
    const toEncode: TextToEncode[] = [];
    for (let i = 0; i < candidates.length; i++) {
      if (rows[i] >= 0 && served.vectors.has(rows[i])) continue;
      const text = candidates[i].text?.trim();
      if (text) toEncode.push({ index: i, itemId: candidates[i].itemId, text });
    }
    if (toEncode.length === 0) return NOTHING_ENCODED;
    // Encoding costs more than the rest of a rank: the caller pays per text (RATE_LIMITED).
    state.request.charge?.(toEncode.length);
    return this.encodeTexts(state, served, toEncode);
  }

  private async encodeTexts(
    state: RequestState,
    served: ServedModel,
    toEncode: readonly TextToEncode[],
  ): Promise<ReadonlyMap<number, Float32Array>> {
    const encoded = new Map<number, Float32Array>();
    try {
      const vectors = await this.metrics.time(state.operation, 'encoding', () =>
        served.model.encodeItems(toEncode, state.abandon.signal),
      );
      toEncode.forEach((entry, j) => encoded.set(entry.index, vectors[j]));
    } catch (error) {
      // A full queue or an abandoned request is the answer, not a degradation.
      if (error instanceof DomainError || state.abandon.aborted) throw error;
      state.degraded.add('encoder_unavailable');
      this.logger.warn({ err: error, texts: toEncode.length }, 'candidate text encoding failed');
    }
    return encoded;
  }
}

/** A candidate's text to encode, by its index in the request. */
interface TextToEncode {
  readonly index: number;
  readonly itemId: string;
  readonly text: string;
}

const NOTHING_ENCODED: ReadonlyMap<number, Float32Array> = new Map();

/** The model score of each candidate; NaN where there is none (no model, user or vector). */
function modelScoresOf(
  served: ServedModel | undefined,
  user: Float32Array | undefined,
  candidates: readonly Candidate[],
  rows: Int32Array,
  encoded: ReadonlyMap<number, Float32Array>,
): Float64Array {
  const scores = new Float64Array(candidates.length).fill(Number.NaN);
  if (served === undefined || user === undefined) return scores;
  const { vectors, model } = served;
  const { scale } = model;
  // The rows with a vector are scored together (the SIMD kernel), then put in place.
  const { scored, at, values } = scoringScratch(candidates.length);
  let count = 0;
  for (let i = 0; i < candidates.length; i++) {
    const row = rows[i];
    if (row >= 0 && vectors.has(row)) {
      scored[count] = row;
      at[count++] = i;
      continue;
    }
    const vector = encoded.get(i);
    if (vector !== undefined) {
      scores[i] = scale * dot(vector, user) + model.itemBias(candidates[i].itemId);
    }
  }
  vectors.scoreRows(scored, count, user, scale, values);
  for (let k = 0; k < count; k++) scores[at[k]] = values[k];
  return scores;
}

/**
 * Refuses candidates that name an item twice, found by their rows (a sort of 100 integers costs
 * a fraction of a Set of 100 fresh strings); ids the table lacks are compared as strings.
 */
function refuseRepeats(candidates: readonly Candidate[], rows: Int32Array): void {
  const sorted = scratchInts(rows.length).subarray(0, rows.length);
  sorted.set(rows);
  sorted.sort();
  let repeated = false;
  for (let k = 1; k < sorted.length && !repeated; k++) {
    repeated = sorted[k] >= 0 && sorted[k] === sorted[k - 1];
  }
  if (!repeated && sorted[0] === -1) {
    const unknown = new Set<string>();
    for (let i = 0; i < candidates.length && !repeated; i++) {
      if (rows[i] >= 0) continue;
      repeated = unknown.has(candidates[i].itemId);
      unknown.add(candidates[i].itemId);
    }
  }
  if (!repeated) return;
  const first = new Map<string, number>();
  candidates.forEach(({ itemId }, i) => {
    const previous = first.get(itemId);
    if (previous !== undefined) {
      throw new ValidationError(
        `candidates[${i}].itemId`,
        `duplicate of candidates[${previous}] ("${itemId}")`,
      );
    }
    first.set(itemId, i);
  });
}

/**
 * Temporaries of `modelScoresOf` and `refuseRepeats`, reused: both run to their end without
 * waiting, and a typed array of its own per request costs a malloc and a sweep each.
 */
let scratchRows = new Int32Array(0);
let scratchScores = new Float64Array(0);

/** The reused integers, at least `length` of them. */
function scratchInts(length: number): Int32Array {
  if (scratchRows.length < length) scratchRows = new Int32Array(length);
  return scratchRows;
}

function scoringScratch(count: number) {
  if (scratchScores.length < count) scratchScores = new Float64Array(count);
  const ints = scratchInts(2 * count);
  return {
    scored: ints.subarray(0, count),
    at: ints.subarray(count, 2 * count),
    values: scratchScores,
  };
}

function validateUserId(userId: string): void {
  const problem = idProblem(userId);
  if (problem !== undefined) throw new ValidationError('userId', problem);
}
