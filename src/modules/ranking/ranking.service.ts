import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { ValidationError } from '../../common/errors';
import { idProblem } from '../../common/ids';
import type { Logger } from '../../common/logger';
import { withTimeout } from '../../common/timeout';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { CatalogFeatures } from './catalog-features.service';
import { OnlineStateReader } from './online-state.reader';
import {
  boostValue,
  CALLER_FEATURE_PREFIX,
  ctrValue,
  FeatureValue,
  isCallerFeatureName,
  ExtraParts,
  ItemPopularity,
  PartTable,
  popularityValue,
  priceValue,
  RankingProfile,
  recencyValue,
  ScorePart,
  weightsFor,
} from './profile';
import { ProfileService } from './profile.service';
import { RankingMetrics, RankingOperation } from './ranking.metrics';
import type { Interaction } from './ranking.repository';
import { HistoryVector, SERVING_MODEL_SOURCE, ServingModel } from './serving-model';
import type { ServingModelSource } from './serving-model';
import { bestFirst, dot, dotRow, topK } from './top-k';

/** As the GraphQL input arrives: absent optional fields may be null or undefined. */
export interface Candidate {
  readonly itemId: string;
  readonly text?: string | null;
  readonly features?: readonly FeatureValue[] | null;
}

export interface RankedItem {
  readonly itemId: string;
  readonly rank: number;
  readonly score: number;
  readonly parts: ScorePart[];
}

/** Base parts in this order, then the candidate's own features; the first is `prior` without a model score. */
const MODEL_PARTS = ['model', 'popularity', 'ctr', 'recency', 'price', 'boost'] as const;
const PRIOR_PARTS = ['prior', ...MODEL_PARTS.slice(1)] as const;
/** Indexes of the two layouts in a request's PartTable. */
const MODEL_LAYOUT = 0;
const PRIOR_LAYOUT = 1;

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
 * Where each candidate's vector comes from: its row in the served catalog (-1: not in it; no rows
 * without a model) or, for an unknown item with text, a vector encoded for this request.
 */
interface CandidateVectors {
  readonly rows: Int32Array | undefined;
  readonly encoded: ReadonlyMap<number, Float32Array>;
}

/**
 * Why an answer is less than the full model ranking:
 * - `no_model`: no served model; ranked by the profile without the model part.
 * - `cold_user`: no usable history; popularity prior instead of the model score.
 * - `online_state_from_postgres`: Redis unavailable; online state computed from PostgreSQL.
 * - `encoder_unavailable`: candidate texts could not be encoded; those items got the prior.
 */
export type Degradation =
  'no_model' | 'cold_user' | 'online_state_from_postgres' | 'encoder_unavailable';

export interface RankResult {
  readonly items: readonly RankedItem[];
  readonly modelVersion: string | null;
  readonly requestId: string;
  readonly degraded: readonly Degradation[];
}

const MAX_TEXT_LENGTH = 10_000;
const MAX_FEATURES = 64;

/** What one request works with; the model is read once so a hot swap never mixes versions. */
interface RequestState {
  readonly operation: RankingOperation;
  readonly model: ServingModel | undefined;
  readonly profile: RankingProfile;
  readonly degraded: Set<Degradation>;
  readonly nowMs: number;
}

interface UserSignal {
  readonly vector: Float32Array | undefined;
  /** Items the user interacted with, when they were read (recommend always reads them). */
  readonly interacted: readonly Interaction[] | undefined;
}

@Injectable()
export class RankingService {
  private readonly logger: Logger;
  private readonly metrics: RankingMetrics;

  constructor(
    @Inject(SERVING_MODEL_SOURCE) private readonly models: ServingModelSource,
    private readonly online: OnlineStateReader,
    private readonly catalog: CatalogFeatures,
    private readonly profiles: ProfileService,
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
    requestId: string,
  ): Promise<RankResult> {
    return this.observe('rank', async () => {
      validateUserId(userId);
      this.validateCandidates(candidates);
      const state = await this.requestState('rank', profileName);
      const rows = this.catalogRows(state, candidates);
      const [user, popularity] = await Promise.all([
        this.userSignal(state, userId, false),
        this.popularity(state, candidates, rows),
      ]);
      const items = await this.score(state, user.vector, candidates, rows, popularity);
      return this.result(state, items, requestId);
    });
  }

  recommend(
    userId: string,
    first: number,
    exclude: readonly string[],
    category: string | undefined,
    requestId: string,
  ): Promise<RankResult> {
    return this.observe('recommend', async () => {
      validateUserId(userId);
      const { recommendMax, maxCandidates, recommendPool } = this.config.ranking;
      if (!Number.isInteger(first) || first < 1 || first > recommendMax) {
        throw new ValidationError('first', `must be between 1 and ${recommendMax}`);
      }
      if (exclude.length > maxCandidates) {
        throw new ValidationError('exclude', `at most ${maxCandidates} ids`);
      }
      const state = await this.requestState('recommend', undefined);
      const user = await this.userSignal(state, userId, true);
      const excluded = new Set(exclude);
      for (const interaction of user.interacted ?? []) excluded.add(interaction.itemId);
      const accept = (itemId: string) => {
        if (excluded.has(itemId)) return false;
        const features = this.catalog.get(itemId);
        if (features?.deleted === true) return false;
        return category === undefined || features?.category === category;
      };
      const pool = Math.max(first, recommendPool);
      const ids = await this.metrics.time('recommend', 'retrieval', () =>
        this.retrieve(state, user.vector, pool, accept),
      );
      const candidates = ids.map((itemId) => ({ itemId }));
      const rows = this.catalogRows(state, candidates);
      const popularity = await this.popularity(state, candidates, rows);
      const items = await this.score(state, user.vector, candidates, rows, popularity);
      return this.result(state, items.slice(0, first), requestId);
    });
  }

  private async observe(
    operation: RankingOperation,
    work: () => Promise<RankResult>,
  ): Promise<RankResult> {
    const started = performance.now();
    let outcome = 'error';
    try {
      const result = await withTimeout(work(), this.config.ranking.timeoutMs, operation);
      outcome = result.degraded.length > 0 ? 'degraded' : 'ok';
      for (const reason of result.degraded) this.metrics.degraded.inc({ reason });
      return result;
    } finally {
      this.metrics.operation.observe({ operation, outcome }, (performance.now() - started) / 1000);
    }
  }

  private async requestState(
    operation: RankingOperation,
    profileName: string | undefined,
  ): Promise<RequestState> {
    const profile = await this.profiles.get(profileName);
    const model = this.models.current();
    const degraded = new Set<Degradation>();
    if (model === undefined) degraded.add('no_model');
    return { operation, model, profile, degraded, nowMs: Date.now() };
  }

  private result(state: RequestState, items: RankedItem[], requestId: string): RankResult {
    return {
      items,
      modelVersion: state.model?.versionId ?? null,
      requestId,
      degraded: [...state.degraded],
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
    const seen = new Set<string>();
    candidates.forEach((candidate, i) => {
      const itemIdProblem = idProblem(candidate.itemId);
      if (itemIdProblem !== undefined) {
        throw new ValidationError(`candidates[${i}].itemId`, itemIdProblem);
      }
      if (seen.has(candidate.itemId)) {
        const previous = candidates.findIndex((other) => other.itemId === candidate.itemId);
        throw new ValidationError(
          `candidates[${i}].itemId`,
          `duplicate of candidates[${previous}] ("${candidate.itemId}")`,
        );
      }
      seen.add(candidate.itemId);
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
   * The user's interest vector: from the cache when it was built for this model at the user's
   * current interest version (the ingest module bumps it on every interaction), else pooled
   * from recent history and cached. `withHistory` also returns the interactions.
   */
  private userSignal(
    state: RequestState,
    userId: string,
    withHistory: boolean,
  ): Promise<UserSignal> {
    return this.metrics.time(state.operation, 'user_vector', async () => {
      const { model } = state;
      const limit = withHistory ? this.config.online.recentCap : this.config.ranking.historyLength;
      if (model === undefined) {
        const interacted = withHistory ? await this.readRecent(state, userId, limit) : undefined;
        return { vector: undefined, interacted };
      }
      const [userState, history] = await Promise.all([
        this.online.userState(userId),
        withHistory ? this.readRecent(state, userId, limit) : Promise.resolve(undefined),
      ]);
      const cached = userState?.cached;
      if (
        cached?.modelVersion === model.versionId &&
        cached.interestVersion === userState?.interestVersion
      ) {
        this.metrics.cache.inc({ cache: 'user_vector', result: 'hit' });
        return { vector: cached.vector, interacted: history };
      }
      this.metrics.cache.inc({ cache: 'user_vector', result: 'miss' });
      const interactions = history ?? (await this.readRecent(state, userId, limit));
      const vectors: HistoryVector[] = [];
      const { catalog } = model;
      for (const interaction of interactions.slice(0, this.config.ranking.historyLength)) {
        const row = catalog.index.get(interaction.itemId);
        if (row === undefined) continue;
        const offset = row * catalog.dimension;
        vectors.push({
          vector: catalog.matrix.subarray(offset, offset + catalog.dimension),
          type: interaction.type,
          ts: interaction.ts,
        });
      }
      if (vectors.length === 0) {
        state.degraded.add('cold_user');
        return { vector: undefined, interacted: interactions };
      }
      const vector = model.userVector(vectors);
      if (userState !== undefined) {
        this.online.cacheUserVector(userId, {
          modelVersion: model.versionId,
          interestVersion: userState.interestVersion,
          vector,
        });
      }
      return { vector, interacted: interactions };
    });
  }

  private async readRecent(state: RequestState, userId: string, limit: number) {
    const read = await this.online.recent(userId, limit);
    if (read.fromPostgres) state.degraded.add('online_state_from_postgres');
    return read.value;
  }

  /** Nearest catalog items to the user vector; popular (then newest) items for cold users. */
  private async retrieve(
    state: RequestState,
    user: Float32Array | undefined,
    count: number,
    accept: (itemId: string) => boolean,
  ): Promise<string[]> {
    const { model } = state;
    if (model !== undefined && user !== undefined) {
      const { catalog } = model;
      // The model score is scale * (user . item) + bias: fold the scale into the query.
      const query = catalog.bias === undefined ? user : user.map((value) => value * model.scale);
      const found = topK(
        catalog.matrix,
        catalog.dimension,
        query,
        count,
        (row) => !accept(catalog.ids[row]),
        catalog.bias,
      );
      return Array.from(found.rows, (row) => catalog.ids[row]);
    }
    if (user === undefined && model !== undefined) state.degraded.add('cold_user');
    const popular = await this.online.popularItems(count, accept);
    if (popular.fromPostgres) state.degraded.add('online_state_from_postgres');
    if (popular.value.length >= count) return popular.value;
    const taken = new Set(popular.value);
    return [
      ...popular.value,
      ...this.catalog.newestItems(
        count - popular.value.length,
        (itemId) => !taken.has(itemId) && accept(itemId),
      ),
    ];
  }

  private async popularity(
    state: RequestState,
    candidates: readonly Candidate[],
    rows: Int32Array | undefined,
  ): Promise<(ItemPopularity | undefined)[]> {
    const { model } = state;
    const read = await this.metrics.time(state.operation, 'online_state', () =>
      this.online.popularity(
        candidates.map((candidate) => candidate.itemId),
        state.nowMs,
        model === undefined || rows === undefined ? undefined : { catalog: model.catalog, rows },
      ),
    );
    if (read.fromPostgres) state.degraded.add('online_state_from_postgres');
    return read.value;
  }

  private async score(
    state: RequestState,
    user: Float32Array | undefined,
    candidates: readonly Candidate[],
    rows: Int32Array | undefined,
    popularity: readonly (ItemPopularity | undefined)[],
  ): Promise<RankedItem[]> {
    const { operation } = state;
    const encoded = await this.encodeUnknown(state, user, candidates, rows);
    const modelScores = this.metrics.timeSync(operation, 'scoring', () =>
      modelScoresOf(state.model, user, candidates, { rows, encoded }),
    );
    return this.metrics.timeSync(operation, 'merge', () =>
      this.merge(state, candidates, rows, modelScores, popularity),
    );
  }

  /** The candidates' rows in the served catalog (-1: not in it); undefined without a model. */
  private catalogRows(
    state: RequestState,
    candidates: readonly Candidate[],
  ): Int32Array | undefined {
    const { model } = state;
    if (model === undefined) return undefined;
    return this.metrics.timeSync(state.operation, 'item_vectors', () => {
      const rows = new Int32Array(candidates.length);
      const { index } = model.catalog;
      for (let i = 0; i < candidates.length; i++) rows[i] = index.get(candidates[i].itemId) ?? -1;
      return rows;
    });
  }

  /** Every candidate's parts and score under the request's profile, best first. */
  private merge(
    state: RequestState,
    candidates: readonly Candidate[],
    rows: Int32Array | undefined,
    modelScores: Float64Array,
    popularity: readonly (ItemPopularity | undefined)[],
  ): RankedItem[] {
    const { model, profile, nowMs } = state;
    const count = candidates.length;
    const table = new PartTable(
      count,
      [
        { names: MODEL_PARTS, weights: weightsFor(profile, MODEL_PARTS) },
        { names: PRIOR_PARTS, weights: weightsFor(profile, PRIOR_PARTS) },
      ],
      MODEL_PARTS.length,
    );
    const aligned =
      model !== undefined && rows !== undefined
        ? this.catalog.alignedWith(model.catalog)
        : undefined;
    // Categories only matter to boosts; without any the category is not read at all.
    const boosted = profile.boosts.length > 0;
    const { values, width } = table;
    for (let i = 0; i < count; i++) {
      const candidate = candidates[i];
      const row = rows === undefined ? -1 : rows[i];
      let createdAtMs: number | undefined;
      let price: number | undefined;
      let category: string | undefined;
      if (aligned !== undefined && row >= 0) {
        createdAtMs = aligned.createdAtMs(row);
        price = aligned.price(row);
        if (boosted) category = aligned.category(row);
      } else {
        const features = this.catalog.get(candidate.itemId);
        createdAtMs = features?.createdAtMs;
        price = features?.price;
        category = features?.category;
      }
      const itemPopularity = popularity[i];
      const popularityPart = popularityValue(itemPopularity);
      const modelScore = modelScores[i];
      const withModel = !Number.isNaN(modelScore);
      const offset = i * width;
      values[offset] = withModel ? modelScore : popularityPart;
      values[offset + 1] = popularityPart;
      values[offset + 2] = ctrValue(itemPopularity);
      values[offset + 3] = recencyValue(createdAtMs, nowMs, profile.recencyHalfLifeDays);
      values[offset + 4] = priceValue(price);
      values[offset + 5] = boostValue(profile, candidate.itemId, category);
      table.complete(
        i,
        withModel ? MODEL_LAYOUT : PRIOR_LAYOUT,
        callerParts(profile, candidate.features),
      );
    }
    const order = bestFirst(table.scores);
    return Array.from(
      order,
      (index, i) => new RankedEntry(candidates[index].itemId, i + 1, table, index),
    );
  }

  /** Vectors of the unknown candidates that come with text (only with a user vector). */
  private async encodeUnknown(
    state: RequestState,
    user: Float32Array | undefined,
    candidates: readonly Candidate[],
    rows: Int32Array | undefined,
  ): Promise<Map<number, Float32Array>> {
    const { model } = state;
    const encoded = new Map<number, Float32Array>();
    if (model === undefined || user === undefined || rows === undefined) return encoded;
    const toEncode: { index: number; itemId: string; text: string }[] = [];
    for (let i = 0; i < candidates.length; i++) {
      const text = rows[i] < 0 ? candidates[i].text?.trim() : undefined;
      if (text) toEncode.push({ index: i, itemId: candidates[i].itemId, text });
    }
    if (toEncode.length === 0) return encoded;
    try {
      const vectors = await this.metrics.time(state.operation, 'encoding', () =>
        model.encodeItems(toEncode),
      );
      toEncode.forEach((entry, j) => encoded.set(entry.index, vectors[j]));
    } catch (error) {
      state.degraded.add('encoder_unavailable');
      this.logger.warn({ err: error, texts: toEncode.length }, 'candidate text encoding failed');
    }
    return encoded;
  }
}

/** The model score of each candidate; NaN where there is none (no model, user or vector). */
function modelScoresOf(
  model: ServingModel | undefined,
  user: Float32Array | undefined,
  candidates: readonly Candidate[],
  { rows, encoded }: CandidateVectors,
): Float64Array {
  const scores = new Float64Array(candidates.length).fill(Number.NaN);
  if (model === undefined || user === undefined || rows === undefined) return scores;
  const { matrix, dimension, bias } = model.catalog;
  for (let i = 0; i < candidates.length; i++) {
    const row = rows[i];
    if (row >= 0) {
      scores[i] =
        model.scale * dotRow(matrix, dimension, row, user) + (bias === undefined ? 0 : bias[row]);
      continue;
    }
    const vector = encoded.get(i);
    if (vector !== undefined) {
      scores[i] = model.scale * dot(vector, user) + model.itemBias(candidates[i].itemId);
    }
  }
  return scores;
}

/** The caller's own features of a candidate as parts named `feature:<name>`. */
function callerParts(
  profile: RankingProfile,
  features: readonly FeatureValue[] | null | undefined,
): ExtraParts | undefined {
  if (features == null || features.length === 0) return undefined;
  const names = features.map((feature) => `${CALLER_FEATURE_PREFIX}${feature.name}`);
  return {
    names,
    values: features.map((feature) => feature.value),
    weights: weightsFor(profile, names),
  };
}

function validateUserId(userId: string): void {
  const problem = idProblem(userId);
  if (problem !== undefined) throw new ValidationError('userId', problem);
}
