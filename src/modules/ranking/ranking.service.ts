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
  ItemPopularity,
  MergedParts,
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
import { dot, dotRow, topK } from './top-k';

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

/** Parts in this order, then the candidate's own features; the first is `prior` without a model score. */
const MODEL_PARTS = ['model', 'popularity', 'ctr', 'recency', 'price', 'boost'] as const;
const PRIOR_PARTS = ['prior', ...MODEL_PARTS.slice(1)] as const;

/** A ranked item whose parts are built only when a caller selects them. */
class RankedEntry implements RankedItem {
  constructor(
    readonly itemId: string,
    readonly rank: number,
    private readonly merged: MergedParts,
  ) {}

  get score(): number {
    return this.merged.score;
  }

  get parts(): ScorePart[] {
    return this.merged.parts;
  }
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
      const [user, popularity] = await Promise.all([
        this.userSignal(state, userId, false),
        this.popularity(state, candidates),
      ]);
      const items = await this.score(state, user.vector, candidates, popularity);
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
      const popularity = await this.popularity(state, candidates);
      const items = await this.score(state, user.vector, candidates, popularity);
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
  ): Promise<(ItemPopularity | undefined)[]> {
    const read = await this.metrics.time(state.operation, 'online_state', () =>
      this.online.popularity(
        candidates.map((candidate) => candidate.itemId),
        state.nowMs,
      ),
    );
    if (read.fromPostgres) state.degraded.add('online_state_from_postgres');
    return read.value;
  }

  private async score(
    state: RequestState,
    user: Float32Array | undefined,
    candidates: readonly Candidate[],
    popularity: readonly (ItemPopularity | undefined)[],
  ): Promise<RankedItem[]> {
    const { operation, model, profile, nowMs } = state;
    const vectors = await this.metrics.time(operation, 'item_vectors', () =>
      this.itemVectors(state, user, candidates),
    );
    const modelScores = this.metrics.timeSync(operation, 'scoring', () =>
      vectors.map((vector, i) => {
        if (model === undefined || user === undefined || vector === undefined) return undefined;
        const { catalog } = model;
        if (typeof vector === 'number') {
          return (
            model.scale * dotRow(catalog.matrix, catalog.dimension, vector, user) +
            (catalog.bias === undefined ? 0 : catalog.bias[vector])
          );
        }
        return model.scale * dot(vector, user) + model.itemBias(candidates[i]?.itemId ?? '');
      }),
    );
    return this.metrics.timeSync(operation, 'merge', () => {
      const modelWeights = weightsFor(profile, MODEL_PARTS);
      const priorWeights = weightsFor(profile, PRIOR_PARTS);
      const scored = candidates.map((candidate, i) => {
        const itemPop = popularity[i];
        const features = this.catalog.get(candidate.itemId);
        const popularityPart = popularityValue(itemPop);
        const modelScore = modelScores[i];
        const values = [
          modelScore ?? popularityPart,
          popularityPart,
          ctrValue(itemPop),
          recencyValue(features?.createdAtMs, nowMs, profile.recencyHalfLifeDays),
          priceValue(features?.price),
          boostValue(profile, candidate.itemId, features?.category),
        ];
        let names: readonly string[] = modelScore === undefined ? PRIOR_PARTS : MODEL_PARTS;
        let weights = modelScore === undefined ? priorWeights : modelWeights;
        if (candidate.features != null && candidate.features.length > 0) {
          const own = candidate.features.map((f) => `${CALLER_FEATURE_PREFIX}${f.name}`);
          names = [...names, ...own];
          weights = [...weights, ...weightsFor(profile, own)];
          for (const feature of candidate.features) values.push(feature.value);
        }
        return {
          itemId: candidate.itemId,
          order: i,
          merged: new MergedParts(names, values, weights),
        };
      });
      scored.sort((a, b) => b.merged.score - a.merged.score || a.order - b.order);
      return scored.map((item, i) => new RankedEntry(item.itemId, i + 1, item.merged));
    });
  }

  /**
   * Per candidate: its catalog row (number), an encoded vector for an unknown item with text, or
   * undefined (no model, no user vector, or no text: the prior stands in).
   */
  private async itemVectors(
    state: RequestState,
    user: Float32Array | undefined,
    candidates: readonly Candidate[],
  ): Promise<(number | Float32Array | undefined)[]> {
    const { model } = state;
    if (model === undefined || user === undefined) return candidates.map(() => undefined);
    const out: (number | Float32Array | undefined)[] = [];
    const toEncode: { index: number; itemId: string; text: string }[] = [];
    candidates.forEach((candidate, i) => {
      const row = model.catalog.index.get(candidate.itemId);
      out.push(row);
      const text = candidate.text?.trim();
      if (row === undefined && text) toEncode.push({ index: i, itemId: candidate.itemId, text });
    });
    if (toEncode.length > 0) {
      try {
        const encoded = await model.encodeItems(toEncode);
        toEncode.forEach((entry, j) => {
          out[entry.index] = encoded[j];
        });
      } catch (error) {
        state.degraded.add('encoder_unavailable');
        this.logger.warn({ err: error, texts: toEncode.length }, 'candidate text encoding failed');
      }
    }
    return out;
  }
}

function validateUserId(userId: string): void {
  const problem = idProblem(userId);
  if (problem !== undefined) throw new ValidationError('userId', problem);
}
