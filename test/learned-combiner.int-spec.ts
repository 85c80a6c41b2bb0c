import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { TOPICS } from '../src/modules/ingest/ingest.service';
import { RegistryService } from '../src/modules/registry/registry.service';
import { ARTIFACT_STORE, ArtifactStore } from '../src/modules/registry/registry.types';
import { loadModel } from '../src/modules/training/model/artifact';
import { runnableCombiner } from '../src/modules/training/model/combiner';
import { generateCatalog, Random, SyntheticItem } from '../src/synthetic';
import { eventMessage, userEvent } from './support/factories';
import { graphql } from './support/graphql';
import { produceRaw, query } from './support/ingest-helpers';
import { eventually } from './support/poll';
import { RankResultView, rankCall } from './support/ranking-helpers';
import { TestContext } from './support/test-context';
import { startCategoryStack } from './support/category-stack';

const catalog = generateCatalog({ items: 160, seed: 'combiner', categories: 4, idPrefix: 'lc-' });
const USERS = 24;
/**
 * Rounds of clicks: with 12, the gate judged 72 held-out slates and the combiner beat the model
 * alone there by 0.006–0.017 AUC (it failed to ship once in a fresh-clone run); with 24, 144
 * slates and 0.031–0.034.
 */
const ROUNDS = 24;
const SLATE = 20;
const SHOWN = 10;

/** Each synthetic user's rule: the cheapest shown item of their category. */
const favourite = (user: number) => catalog.categories[user % catalog.categories.length];
const priceOf = new Map(catalog.items.map((item) => [item.itemId, item.price]));
const categoryOf = new Map(catalog.items.map((item) => [item.itemId, item.category]));

function ruleChoice(user: number, itemIds: readonly string[]): string | undefined {
  return itemIds
    .filter((itemId) => categoryOf.get(itemId) === favourite(user))
    .sort((a, b) => (priceOf.get(a) ?? 0) - (priceOf.get(b) ?? 0))[0];
}

/**
 * Clicks are gathered on one half of the catalog, the rule is judged on the other: the model
 * could learn which items are cheap from their ids (their ID embeddings), but not of items it
 * never saw clicked; only the price input carries the rule to them.
 */
const CLICKED_HALF = catalog.items.filter((_, i) => i % 2 === 0);
const JUDGED_HALF = catalog.items.filter((_, i) => i % 2 === 1);

function slateFor(random: Random, user: number, items: readonly SyntheticItem[]): SyntheticItem[] {
  // Half from the user's category, so the rule has several items to choose between.
  const own = items.filter((item) => item.category === favourite(user));
  const rest = items.filter((item) => item.category !== favourite(user));
  const pick = (from: SyntheticItem[], n: number) =>
    [...from].sort(() => random.next() - 0.5).slice(0, n);
  return [...pick(own, SLATE / 2), ...pick(rest, SLATE / 2)];
}

/**
 * The combiner end to end on the real stack: synthetic users click the cheapest item of their
 * category among the top of what `rank` served; the slates go through `rank.served` into
 * PostgreSQL, the clicks (with the answers' request ids) through `user.events`; a training run
 * fits the model and the combiner. The text vectors say the category but not the price, so only
 * the combiner can learn "cheap": its price shape must fall, and the served order must follow
 * the rule better than the same version's model alone.
 */
describe('learned combiner on served slates (api + ingest + train in one app)', () => {
  let context: TestContext;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    // Text vectors that say the category (and nothing of the price): only the combiner sees it.
    ({ context, app } = await startCategoryStack(catalog.items, {
      // Half the slates held out: the combiner fits on one half of them, is judged on the other.
      TRAIN_VALIDATION_FRACTION: '0.5',
      TRAIN_COMBINER_MIN_SLATES: '40',
      TRAIN_SHOWN_DEPTH: String(SHOWN),
    }));
  }, 60_000);

  afterAll(async () => {
    await app.close();
    await context.cleanup();
  });

  const rank = async (user: number, items: readonly SyntheticItem[], profile?: string) => {
    const response = await rankCall(app, {
      userId: `user-${String(user)}`,
      candidates: items.map((item) => ({ itemId: item.itemId })),
      ...(profile === undefined ? {} : { profile }),
    });
    const result = response.data?.rank;
    if (result === undefined) throw new Error(JSON.stringify(response.errors));
    return result;
  };

  /** Mean 1-based position of the rule's choice among all candidates: lower follows the rule. */
  const rulePosition = async (random: Random, profile?: string) => {
    let total = 0;
    for (let user = 0; user < USERS; user++) {
      const result: RankResultView = await rank(user, slateFor(random, user, JUDGED_HALF), profile);
      const ids = result.items.map((item) => item.itemId);
      total += ids.indexOf(ruleChoice(user, ids) ?? '') + 1;
    }
    return total / USERS;
  };

  it('learns the price rule from served slates and follows it better than the model alone', async () => {
    const random = new Random('combiner-clicks');
    let clicks = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const messages = [];
      for (let user = 0; user < USERS; user++) {
        const result = await rank(user, slateFor(random, user, CLICKED_HALF));
        const shown = result.items.slice(0, SHOWN).map((item) => item.itemId);
        const chosen = ruleChoice(user, shown);
        if (chosen === undefined) continue;
        messages.push(
          eventMessage(
            userEvent({
              userId: `user-${String(user)}`,
              itemId: chosen,
              type: 'click',
              requestId: result.requestId,
              position: shown.indexOf(chosen) + 1,
              timestamp: new Date().toISOString(),
            }),
          ),
        );
      }
      clicks += messages.length;
      await produceRaw(context.config, TOPICS.events, messages);
    }
    await eventually(
      async () => {
        const [events] = await query<{ n: number }>(
          context.config.postgres.url,
          "SELECT count(*)::int AS n FROM events WHERE type = 'click'",
        );
        const [slates] = await query<{ n: number }>(
          context.config.postgres.url,
          'SELECT count(*)::int AS n FROM served_slates',
        );
        return events.n === clicks && slates.n >= USERS * ROUNDS;
      },
      30_000,
      { what: 'clicks and served slates stored' },
    );

    const started = await graphql<{ trainModel: { id: string } }>(
      app,
      'mutation { trainModel(mode: FULL) { id } }',
    );
    const runId = started.data?.trainModel.id ?? '';
    let versionId = '';
    const outcome = await eventually(
      async () => {
        const response = await graphql<{
          trainingRun: { status: string; error: string | null; versionId: string | null };
        }>(app, `query { trainingRun(id: "${runId}") { status error versionId } }`);
        const run = response.data?.trainingRun;
        versionId = run?.versionId ?? '';
        return `${run?.status ?? JSON.stringify(response.errors)} ${run?.error ?? ''}`;
      },
      120_000,
      { what: 'training run', until: (state) => /^(succeeded|failed)/i.test(state) },
    );
    expect(outcome.value).toMatch(/^succeeded/i);
    const artifact = await app
      .get<symbol, ArtifactStore>(ARTIFACT_STORE, { strict: false })
      .get(versionId);
    const { manifest } = loadModel(artifact);
    const spec = manifest.combiner;
    // The training run's combiner note, kept with the version: how it was judged, or why not.
    const version = await app.get(RegistryService, { strict: false }).getVersion(versionId);
    const note = String(version.hyperparameters.combiner);
    process.stdout.write(`combiner: ${note}\n`);
    if (spec === undefined) {
      throw new Error(`no combiner shipped: ${note}; ${JSON.stringify(version.metrics)}`);
    }
    // The right sign: the dearer, the smaller the price part.
    const combiner = runnableCombiner(spec);
    const price = combiner.inputs.indexOf('price');
    const knots = spec.shapes.price.knots;
    expect(combiner.contribution(price, knots[knots.length - 1])).toBeLessThan(
      combiner.contribution(price, knots[0]) - 0.5,
    );
    // It shipped because it beat the model alone on the held-out half of the slates.
    expect(spec.fit.servedAuc).toBeGreaterThanOrEqual(Number(spec.fit.modelAuc));

    // Serve it (the gate may have kept it a candidate against the untrained model's window).
    await app.get(RegistryService, { strict: false }).activate(versionId, 'test');
    const modelAlone = await graphql(
      app,
      `
        mutation {
          upsertRankingProfile(
            profile: {
              name: "model-alone"
              scoring: HAND
              weights: [
                { feature: "model", weight: 1 }
                { feature: "prior", weight: 0 }
                { feature: "popularity", weight: 0 }
                { feature: "ctr", weight: 0 }
                { feature: "recency", weight: 0 }
                { feature: "price", weight: 0 }
              ]
            }
          ) {
            name
          }
        }
      `,
    );
    expect(modelAlone.errors).toBeUndefined();
    let sample: RankResultView | undefined;
    await eventually(
      async () => {
        sample = await rank(0, slateFor(new Random('probe'), 0, JUDGED_HALF));
        return sample.modelVersion === versionId;
      },
      10_000,
      { what: 'the new version served' },
    );
    // Exact explanations: learned parts at weight 1, each with its input, summing to the score.
    for (const item of sample?.items ?? []) {
      const sum = item.parts.reduce((total, part) => total + part.value * part.weight, 0);
      expect(item.score).toBeCloseTo(sum, 9);
    }
    const learned = await rulePosition(new Random('judge'));
    const alone = await rulePosition(new Random('judge'), 'model-alone');
    process.stdout.write(
      `rule choice's mean position: learned combiner ${learned.toFixed(2)}, model alone ${alone.toFixed(2)}\n`,
    );
    // The model alone puts it about 6th of 20 (it knows the category, not the price); the
    // combiner about 2nd (runs vary with the timing of the slates in the held-out window).
    expect(learned).toBeLessThan(alone / 2);
  }, 240_000);
});
