import { decay, popularityColumns } from '../../online-state/online-state.schema';
import { FEATURE_PARTS } from '../../ranking/features';
import { merge, MergeInput } from '../../ranking/merge';
import { DEFAULT_PROFILE, RankingProfile } from '../../ranking/profile';
import { servedModelScore } from '../combiner-stage';
import { Impression, SERVED_FEATURE_INPUTS, ServedInputs } from '../dataset/dataset';
import type { RunnableCombiner } from '../model/combiner';
import { ImpressionScorer } from './scorers';

/** What serving knew of the candidates at an impression's moment. */
export interface ServedFacts {
  /** `popularityColumns` of the candidates. */
  readonly popularity: Float64Array;
  readonly createdAtMs: Float64Array;
}

interface Counts {
  impressions: number;
  clicks: number;
  /** When the counts were last decayed to. */
  at: number;
}

/**
 * The serving features of every impression, rebuilt from the training impressions alone as the
 * online state would have held them at that moment: each train impression counts as an
 * impression of every candidate and a click of the clicked ones, decayed with the service's
 * popularity half-life (online-state.schema.ts); an item's creation time is the first time it was
 * shown. Impressions are answered in time order, each seeing only train impressions strictly
 * before it.
 */
export function servedFactsAt(
  train: readonly Impression[],
  queries: readonly Impression[],
  halfLifeMs: number,
): Map<string, ServedFacts> {
  const events = [...train].sort((a, b) => a.time - b.time);
  const ordered = [...queries].sort((a, b) => a.time - b.time);
  const counts = new Map<string, Counts>();
  const firstSeen = new Map<string, number>();
  const out = new Map<string, ServedFacts>();
  let next = 0;
  for (const query of ordered) {
    while (next < events.length && events[next].time < query.time) {
      const event = events[next++];
      const clicked = new Set(event.clicked);
      for (const itemId of [...event.clicked, ...event.notClicked]) {
        const entry = counts.get(itemId) ?? { impressions: 0, clicks: 0, at: event.time };
        const factor = decay(entry.at, event.time, halfLifeMs);
        entry.impressions = entry.impressions * factor + 1;
        entry.clicks = entry.clicks * factor + (clicked.has(itemId) ? 1 : 0);
        entry.at = event.time;
        counts.set(itemId, entry);
        if (!firstSeen.has(itemId)) firstSeen.set(itemId, event.time);
      }
    }
    const candidates = [...query.clicked, ...query.notClicked];
    out.set(query.id, {
      popularity: popularityColumns(
        candidates.map((itemId) => {
          const entry = counts.get(itemId);
          if (entry === undefined) return undefined;
          const factor = decay(entry.at, query.time, halfLifeMs);
          return {
            impressions: entry.impressions * factor,
            clicks: entry.clicks * factor,
            addToCarts: 0,
            purchases: 0,
          };
        }),
      ),
      createdAtMs: Float64Array.from(candidates, (itemId) => firstSeen.get(itemId) ?? Number.NaN),
    });
  }
  return out;
}

function mergeInput(
  candidates: readonly string[],
  facts: ServedFacts,
  modelScores: Float64Array,
): MergeInput {
  return {
    itemIds: candidates,
    popularity: facts.popularity,
    createdAtMs: facts.createdAtMs,
    price: new Float64Array(candidates.length).fill(Number.NaN),
    category: candidates.map(() => undefined),
    modelScores,
    callerFeatures: candidates.map(() => undefined),
  };
}

/**
 * What `rank` returns, as a scorer: the model's scores (none for a cold user, whose history is
 * dropped) merged by ranking's own merge under `profile` (and `combiner` for a learned profile).
 */
export function servedScorer(
  model: ImpressionScorer,
  facts: ReadonlyMap<string, ServedFacts>,
  profile: RankingProfile,
  combiner: RunnableCombiner | undefined,
  coldUsers = false,
): ImpressionScorer {
  return (impression, candidates) => {
    const known = facts.get(impression.id);
    if (known === undefined) throw new Error(`no served facts for impression ${impression.id}`);
    const modelScores = coldUsers
      ? new Float64Array(candidates.length).fill(Number.NaN)
      : Float64Array.from(model(impression, candidates), servedModelScore);
    const { table } = merge(mergeInput(candidates, known, modelScores), {
      profile,
      nowMs: impression.time,
      combiner,
    });
    return Array.from(table.scores);
  };
}

/**
 * The impressions with the inputs serving computed for each candidate (features.ts) as their
 * served inputs, at no position (the data logged none): what the combiner learns from.
 */
export function withServedInputs(
  impressions: readonly Impression[],
  facts: ReadonlyMap<string, ServedFacts>,
): Impression[] {
  const columns = SERVED_FEATURE_INPUTS.map((input) =>
    FEATURE_PARTS.findIndex((part) => part.name === input),
  );
  return impressions.map((impression) => {
    const candidates = [...impression.clicked, ...impression.notClicked];
    const known = facts.get(impression.id);
    if (known === undefined) throw new Error(`no served facts for impression ${impression.id}`);
    const input = mergeInput(candidates, known, new Float64Array(candidates.length));
    const context = { profile: DEFAULT_PROFILE, nowMs: impression.time };
    const width = FEATURE_PARTS.length;
    const values = new Float64Array(candidates.length * width);
    FEATURE_PARTS.forEach((part, j) => {
      part.fill(input, context, values, width, j);
    });
    const served: Record<string, ServedInputs> = {};
    candidates.forEach((itemId, i) => {
      served[itemId] = { position: 0, inputs: columns.map((j) => values[i * width + j]) };
    });
    return { ...impression, served };
  });
}
