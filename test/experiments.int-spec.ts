import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { CanaryJudge } from '../src/modules/experiments/canary.judge';
import { ExperimentsRepository } from '../src/modules/experiments/experiments.repository';
import { TOPICS } from '../src/modules/ingest/ingest.service';
import { RegistryRepository } from '../src/modules/registry/registry.repository';
import { ARTIFACT_STORE, ArtifactStore } from '../src/modules/registry/registry.types';
import { ServedLogRepository } from '../src/modules/served-log/served-log.repository';
import { loadModel, serializeModel } from '../src/modules/training/model/artifact';
import { generateCatalog, Random, SyntheticItem } from '../src/synthetic';
import { eventMessage, userEvent } from './support/factories';
import { graphql } from './support/graphql';
import { produceRaw, query } from './support/ingest-helpers';
import { eventually } from './support/poll';
import { contextWithPool, TestContext } from './support/test-context';
import { startCategoryStack } from './support/category-stack';

const catalog = generateCatalog({
  items: 200,
  seed: 'experiments',
  categories: 4,
  idPrefix: 'ex-',
});
const USERS = 40;
const SLATE = 20;
const SHOWN = 10;
/** A shown item of the user's category is clicked with this probability; any other rarely. */
const CLICK_FAVOURITE = 0.5;
const CLICK_OTHER = 0.02;
/**
 * Slates count once this old: more than a round of `simulate` and the ingest of its events take on
 * a loaded machine, and far more than a test's own steps between serving and storing events.
 */
const ATTRIBUTION_DELAY_MS = 3000;
/**
 * Impressions an arm before the judge decides the simulated canaries: the arms' CTRs differ by
 * about 10 points, which the two-proportion test at 400 an arm (one round of some 20 users) misses
 * in several runs in a hundred by sampling alone; at 1200, in about one in ten thousand.
 */
const CANARY_MIN_IMPRESSIONS = 1200;

const favourite = (user: number) => catalog.categories[user % catalog.categories.length];
const categoryOf = new Map(catalog.items.map((item) => [item.itemId, item.category]));
const userId = (user: number) => `xu-${String(user)}`;

interface Answer {
  requestId: string;
  modelVersion: string | null;
  experiment: string | null;
  arm: string | null;
  items: { itemId: string }[];
}

interface ArmView {
  name: string;
  modelVersion: string | null;
  online: {
    slates: number;
    impressions: number;
    clicks: number;
    ctr: { rate: number; low: number; high: number };
    ctrVsControl: { difference: number; pValue: number; significant: boolean } | null;
    impressionsNeeded: number | null;
    verdict: string;
    summary: string;
  };
}

const RANK = `query($userId: ID!, $candidates: [CandidateInput!]!, $arm: String) {
  rank(userId: $userId, candidates: $candidates, arm: $arm) {
    requestId modelVersion experiment arm items { itemId }
  }
}`;

const EXPERIMENT_FIELDS = `id name kind status outcome outcomeReason
  arms { name modelVersion online { slates impressions clicks ctr { rate low high }
    ctrVsControl { difference pValue significant } impressionsNeeded verdict summary } }`;

/**
 * Experiments and canaries on the real stack (api + ingest + train in one app): synthetic users
 * who click items of their own category, a version trained on their clicks and a deliberately
 * blinded copy of it. Split 50/50, the trained arm's online CTR is significantly higher and the
 * report says so; a canary of the blinded version is rolled back by the judge, with its reason.
 */
describe('experiments and canaries (online metrics from the served-slate log)', () => {
  let context: TestContext;
  let app: NestFastifyApplication;
  const random = new Random('experiment-users');
  let trainedId = '';
  let blindedId = '';

  beforeAll(async () => {
    ({ context, app } = await startCategoryStack(catalog.items, {
      EXPERIMENT_REFRESH_MS: '200',
      EXPERIMENT_JUDGE_INTERVAL_MS: '300',
      EXPERIMENT_ATTRIBUTION_DELAY_MS: String(ATTRIBUTION_DELAY_MS),
      MODEL_POLL_INTERVAL_MS: '500',
    }));
  }, 60_000);

  afterAll(async () => {
    await app.close();
    await context.cleanup();
  });

  const rank = async (user: number, arm?: string): Promise<Answer> => {
    const candidates = [...catalog.items]
      .sort(() => random.next() - 0.5)
      .slice(0, SLATE)
      .map((item: SyntheticItem) => ({ itemId: item.itemId }));
    const response = await graphql<{ rank: Answer }>(app, RANK, {
      userId: userId(user),
      candidates,
      arm: arm ?? null,
    });
    if (response.data === undefined) throw new Error(JSON.stringify(response.errors));
    return response.data.rank;
  };

  /**
   * `rounds` slates per user: the top SHOWN items are reported as impressions, and those of the
   * user's category clicked with CLICK_FAVOURITE (others with CLICK_OTHER). Returns the answers.
   */
  const simulate = async (rounds: number): Promise<Answer[]> => {
    const answers: Answer[] = [];
    for (let round = 0; round < rounds; round++) {
      const messages: ReturnType<typeof eventMessage>[] = [];
      for (let user = 0; user < USERS; user++) {
        const answer = await rank(user);
        answers.push(answer);
        answer.items.slice(0, SHOWN).forEach(({ itemId }, i) => {
          const event = { userId: userId(user), itemId, requestId: answer.requestId };
          const timestamp = new Date().toISOString();
          messages.push(
            eventMessage(userEvent({ ...event, type: 'impression', position: i + 1, timestamp })),
          );
          const p = categoryOf.get(itemId) === favourite(user) ? CLICK_FAVOURITE : CLICK_OTHER;
          if (random.next() < p) {
            messages.push(
              eventMessage(userEvent({ ...event, type: 'click', position: i + 1, timestamp })),
            );
          }
        });
      }
      await produceRaw(context.config, TOPICS.events, messages);
    }
    await eventually(
      async () => {
        const [stored] = await query<{ n: number }>(
          context.config.postgres.url,
          'SELECT count(*)::int AS n FROM served_slates WHERE request_id = ANY($1)',
          [answers.map((answer) => answer.requestId)],
        );
        const [events] = await query<{ n: number }>(
          context.config.postgres.url,
          "SELECT count(*)::int AS n FROM events WHERE type = 'impression' AND request_id = ANY($1)",
          [answers.map((answer) => answer.requestId)],
        );
        return stored.n === answers.length && events.n === answers.length * SHOWN;
      },
      60_000,
      { what: 'slates and impressions stored' },
    );
    return answers;
  };

  const ops = async <T>(text: string, variables: Record<string, unknown> = {}): Promise<T> => {
    const response = await graphql<T>(app, text, variables);
    if (response.data === undefined || response.errors !== undefined) {
      throw new Error(JSON.stringify(response.errors));
    }
    return response.data;
  };

  it('trains a version on clicks and blinds a copy of it', async () => {
    await simulate(4);
    const { trainModel } = await ops<{ trainModel: { id: string } }>(
      'mutation { trainModel(mode: FULL) { id } }',
    );
    const run = await eventually(
      async () =>
        (
          await ops<{ trainingRun: { status: string; versionId: string | null } }>(
            `query { trainingRun(id: "${trainModel.id}") { status versionId } }`,
          )
        ).trainingRun,
      120_000,
      { what: 'training run', until: (state) => /^(SUCCEEDED|FAILED)$/.test(state.status) },
    );
    expect(run.value.status).toBe('SUCCEEDED');
    trainedId = run.value.versionId ?? '';
    // Blinded: the trained weights with the user-item score scaled to nothing and no combiner,
    // so it ranks by popularity, recency and price alone.
    const store = app.get<symbol, ArtifactStore>(ARTIFACT_STORE, { strict: false });
    const trained = loadModel(await store.get(trainedId));
    const registry = app.get(RegistryRepository, { strict: false });
    blindedId = await registry.insertTrainingVersion({
      parentId: trainedId,
      encoderId: trained.manifest.encoderId,
      triggeredBy: 'test (blinded)',
    });
    await store.put(
      blindedId,
      serializeModel(
        { ...trained.manifest, combiner: undefined },
        {
          ...trained.weights,
          'score.logScale': { shape: [1], data: Float32Array.of(-30) },
          ...(trained.weights['score.popularity'] === undefined
            ? {}
            : { 'score.popularity': { shape: [1], data: Float32Array.of(0) } }),
        },
      ),
    );
    await registry.setVersionStatus(blindedId, 'candidate', null);
    await ops(`mutation { activateModelVersion(id: "${trainedId}") { id } }`);
  }, 240_000);

  it('splits users 50/50 and finds the trained arm significantly better online', async () => {
    const { createExperiment } = await ops<{ createExperiment: { id: string; status: string } }>(
      `mutation($experiment: ExperimentInput!) { createExperiment(experiment: $experiment) { id status } }`,
      {
        experiment: {
          name: 'trained-vs-blinded',
          arms: [
            { name: 'blinded', modelVersion: blindedId, share: 50 },
            { name: 'trained', modelVersion: trainedId, share: 50 },
          ],
          minImpressions: 500,
        },
      },
    );
    expect(createExperiment.status).toBe('DRAFT');
    await ops(`mutation { startExperiment(id: "${createExperiment.id}") { status } }`);
    // Every arm's version loads on the replica within a poll or two of the start.
    await eventually(
      async () => {
        const answers = await Promise.all([0, 1, 2, 3, 4, 5].map((user) => rank(user)));
        return answers.every((answer) => answer.experiment === 'trained-vs-blinded');
      },
      20_000,
      { what: 'both arms served' },
    );
    const { servingModel } = await ops<{
      servingModel: { versionId: string; armVersionIds: string[] };
    }>('{ servingModel { versionId armVersionIds } }');
    expect(servingModel).toEqual({ versionId: trainedId, armVersionIds: [blindedId] });
    const forced = await rank(0, 'blinded');
    expect(forced).toMatchObject({ arm: 'blinded', modelVersion: blindedId });

    const answers = await simulate(12);
    const armOfUser = new Map<string, Set<string | null>>();
    for (const answer of answers) {
      expect(answer.modelVersion).toBe(answer.arm === 'trained' ? trainedId : blindedId);
    }
    answers.forEach((answer, i) => {
      const user = userId(i % USERS);
      armOfUser.set(user, (armOfUser.get(user) ?? new Set()).add(answer.arm));
    });
    // Sticky: every user stayed in one arm; both arms have users.
    expect([...armOfUser.values()].every((arms) => arms.size === 1)).toBe(true);
    expect(new Set(answers.map((answer) => answer.arm))).toEqual(new Set(['trained', 'blinded']));

    // The report counts a slate once it is past the attribution delay: wait for all of them.
    const [{ n: served }] = await query<{ n: number }>(
      context.config.postgres.url,
      'SELECT count(*)::int AS n FROM served_slates WHERE experiment_id = $1',
      [createExperiment.id],
    );
    const { value: experiment } = await eventually(
      async () =>
        (
          await ops<{ experiment: { arms: ArmView[] } }>(
            `query { experiment(id: "${createExperiment.id}") { ${EXPERIMENT_FIELDS} } }`,
          )
        ).experiment,
      30_000,
      {
        what: `the report counting all ${served} slates`,
        until: (report) => report.arms.reduce((sum, arm) => sum + arm.online.slates, 0) >= served,
      },
    );
    const [blinded, trained] = experiment.arms;
    process.stdout.write(
      `experiment report:\n  ${blinded.online.summary}\n  ${trained.online.summary}\n`,
    );
    expect(blinded.online.verdict).toBe('CONTROL');
    expect(trained.online.impressions).toBeGreaterThanOrEqual(500);
    expect(blinded.online.impressions).toBeGreaterThanOrEqual(500);
    expect(trained.online.ctr.low).toBeGreaterThan(blinded.online.ctr.high);
    expect(trained.online.ctrVsControl).toMatchObject({ significant: true });
    expect(trained.online.ctrVsControl?.pValue).toBeLessThan(0.001);
    expect(trained.online.verdict).toBe('BETTER');
    expect(trained.online.summary).toMatch(/^trained: significantly better than control/);

    const { modelVersions } = await ops<{
      modelVersions: { id: string; online: { impressions: number; clicks: number } }[];
    }>('query { modelVersions(first: 10) { id online { impressions clicks } } }');
    const trainedOnline = modelVersions.find((version) => version.id === trainedId)?.online;
    expect(trainedOnline?.impressions).toBeGreaterThanOrEqual(trained.online.impressions);

    const { stopExperiment } = await ops<{ stopExperiment: { status: string; outcome: string } }>(
      `mutation { stopExperiment(id: "${createExperiment.id}") { status outcome } }`,
    );
    expect(stopExperiment).toEqual({ status: 'STOPPED', outcome: 'stopped' });
  }, 240_000);

  it('judges a canary on its slates past the attribution delay, not on fresh ones without clicks', async () => {
    await ops(
      `mutation { activateModelVersion(id: "${blindedId}", canaryPercent: 50, canaryMinImpressions: 100) { id } }`,
    );
    const { experiments } = await ops<{ experiments: { id: string; kind: string }[] }>(
      '{ experiments(first: 1) { id kind } }',
    );
    const [canary] = experiments;
    expect(canary.kind).toBe('CANARY');
    // Ten slates an arm of SLATE logged items, just served; their events are not stored yet.
    const servedAt = new Date();
    const slates = ['control', 'canary'].flatMap((arm) =>
      Array.from({ length: 10 }, (_, i) => ({
        requestId: `fresh-${canary.id}-${arm}-${String(i)}`,
        userId: userId(i),
        operation: 'rank' as const,
        servedAt,
        modelVersion: arm === 'canary' ? blindedId : trainedId,
        profile: 'default',
        experimentId: canary.id,
        arm,
        candidates: SLATE,
        features: [],
        itemIds: catalog.items.slice(i, i + SLATE).map((item) => item.itemId),
        scores: Array.from({ length: SLATE }, (_, p) => 1 / (p + 1)),
        values: [],
      })),
    );
    await app.get(ServedLogRepository, { strict: false }).insertSlates(slates);
    // A pass of the judge after the insert (a second one: a pass under way is shared).
    const judge = app.get(CanaryJudge, { strict: false });
    await judge.judge();
    await judge.judge();
    // Counted now, their logged items would be 200 impressions an arm without a click, and the
    // judge would promote on them.
    const fresh = await ops<{ experiment: { status: string; arms: ArmView[] } }>(
      `query { experiment(id: "${canary.id}") { ${EXPERIMENT_FIELDS} } }`,
    );
    expect(fresh.experiment.status).toBe('RUNNING');
    expect(
      fresh.experiment.arms.map(({ name, online }) => ({
        name,
        slates: online.slates,
        impressions: online.impressions,
        verdict: online.verdict,
      })),
    ).toEqual([
      { name: 'control', slates: 0, impressions: 0, verdict: 'CONTROL' },
      { name: 'canary', slates: 0, impressions: 0, verdict: 'COLLECTING' },
    ]);
    // The events arrive (stored directly, so that they come before the delay ends): SHOWN
    // impressions a slate; the control's slates have 5 clicks, the canary's 1.
    const events = slates.flatMap((slate) =>
      slate.itemIds.slice(0, SHOWN).flatMap((itemId, p) => {
        const types =
          p < (slate.arm === 'control' ? 5 : 1) ? ['impression', 'click'] : ['impression'];
        return types.map((type) => ({ type, slate, itemId, position: p + 1 }));
      }),
    );
    await query(
      context.config.postgres.url,
      `INSERT INTO events (event_id, type, user_id, item_id, ts, request_id, position)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                            $6::text[], $7::int[])`,
      [
        events.map((e) => `${e.slate.requestId}-${e.type}-${String(e.position)}`),
        events.map((e) => e.type),
        events.map((e) => e.slate.userId),
        events.map((e) => e.itemId),
        events.map(() => new Date().toISOString()),
        events.map((e) => e.slate.requestId),
        events.map((e) => e.position),
      ],
    );
    const judged = await eventually(
      async () =>
        (
          await ops<{
            experiments: { status: string; outcome: string | null; outcomeReason: string | null }[];
          }>('{ experiments(first: 1) { status outcome outcomeReason } }')
        ).experiments[0],
      30_000,
      { what: 'canary judged', until: (experiment) => experiment.status === 'STOPPED' },
    );
    expect(judged.at - servedAt.getTime()).toBeGreaterThanOrEqual(ATTRIBUTION_DELAY_MS);
    expect(judged.value.outcome).toBe('rolled back');
    expect(judged.value.outcomeReason).toMatch(
      /^canary rolled back: canary: significantly worse than control at 95%: CTR 10\.00% .* vs control 50\.00% .* after 100 and 100 impressions$/,
    );
  }, 60_000);

  it('rolls a canary of the blinded version back automatically, with the reason', async () => {
    const { activateModelVersion } = await ops<{ activateModelVersion: { id: string } }>(
      `mutation { activateModelVersion(id: "${blindedId}", canaryPercent: 50, canaryMinImpressions: ${CANARY_MIN_IMPRESSIONS}) { id status } }`,
    );
    expect(activateModelVersion.id).toBe(blindedId);
    await eventually(
      async () => (await rank(1)).experiment?.startsWith(`canary-v${blindedId}-`) === true,
      20_000,
      { what: 'canary served' },
    );
    await simulate(14);
    const judged = await eventually(
      async () =>
        (
          await ops<{
            experiments: {
              kind: string;
              status: string;
              outcome: string | null;
              outcomeReason: string | null;
            }[];
          }>('query { experiments(first: 1) { kind status outcome outcomeReason } }')
        ).experiments[0],
      30_000,
      { what: 'canary judged', until: (experiment) => experiment.status === 'STOPPED' },
    );
    expect(judged.value).toMatchObject({ kind: 'CANARY', outcome: 'rolled back' });
    expect(judged.value.outcomeReason).toMatch(
      /^canary rolled back: canary: significantly worse than control/,
    );

    const { modelVersion, activeModel, modelActivations } = await ops<{
      modelVersion: { status: string; statusReason: string };
      activeModel: { id: string };
      modelActivations: { action: string; versionId: string; reason: string | null }[];
    }>(
      `query { modelVersion(id: "${blindedId}") { status statusReason } activeModel { id }
               modelActivations(first: 5) { action versionId reason } }`,
    );
    expect(modelVersion.status).toBe('CANDIDATE');
    expect(modelVersion.statusReason).toMatch(/^canary rolled back/);
    expect(activeModel.id).toBe(trainedId);
    expect(modelActivations.slice(0, 2)).toEqual([
      { action: 'canary_rollback', versionId: blindedId, reason: judged.value.outcomeReason },
      expect.objectContaining({ action: 'canary_start', versionId: blindedId }),
    ]);
    // Everyone is back on the active version.
    await eventually(async () => (await rank(1)).experiment === null, 10_000, {
      what: 'canary gone from answers',
    });
  }, 240_000);

  it('promotes a canary that is not worse: the trained version against the blinded one', async () => {
    await ops(`mutation { activateModelVersion(id: "${blindedId}") { id } }`);
    await ops(
      `mutation { activateModelVersion(id: "${trainedId}", canaryPercent: 50, canaryMinImpressions: ${CANARY_MIN_IMPRESSIONS}) { id } }`,
    );
    await eventually(
      async () => (await rank(1)).experiment?.startsWith(`canary-v${trainedId}-`) === true,
      20_000,
      { what: 'canary served' },
    );
    await simulate(14);
    const active = await eventually(
      async () =>
        (await ops<{ activeModel: { id: string } }>('{ activeModel { id } }')).activeModel.id,
      30_000,
      { what: 'canary promoted', until: (id) => id === trainedId },
    );
    expect(active.value).toBe(trainedId);
    const { experiments, modelActivations } = await ops<{
      experiments: { outcome: string; outcomeReason: string }[];
      modelActivations: { action: string; versionId: string; reason: string }[];
    }>(
      '{ experiments(first: 1) { outcome outcomeReason } modelActivations(first: 1) { action versionId reason } }',
    );
    expect(experiments[0].outcome).toBe('promoted canary');
    expect(experiments[0].outcomeReason).toMatch(/^canary: significantly better than control/);
    expect(modelActivations[0]).toEqual({
      action: 'canary_promote',
      versionId: trainedId,
      reason: `canary promoted: ${experiments[0].outcomeReason}`,
    });
  }, 240_000);

  it('promotes a profile arm: the default profile takes its weights', async () => {
    await ops(
      `mutation { upsertRankingProfile(profile: { name: "fresh", scoring: HAND, weights: [{ feature: "recency", weight: 3 }] }) { name } }`,
    );
    const { createExperiment } = await ops<{ createExperiment: { id: string } }>(
      `mutation { createExperiment(experiment: { name: "fresh-profile", arms: [{ name: "as-is", share: 70 }, { name: "fresh", profile: "fresh", share: 30 }] }) { id } }`,
    );
    await ops(`mutation { startExperiment(id: "${createExperiment.id}") { status } }`);
    await eventually(async () => (await rank(2)).experiment === 'fresh-profile', 10_000, {
      what: 'profile experiment served',
    });
    expect((await rank(2, 'fresh')).arm).toBe('fresh');
    const { promoteArm } = await ops<{ promoteArm: { status: string; outcome: string } }>(
      `mutation { promoteArm(experimentId: "${createExperiment.id}", arm: "fresh") { status outcome } }`,
    );
    expect(promoteArm).toEqual({ status: 'STOPPED', outcome: 'promoted fresh' });
    const { rankingProfiles } = await ops<{
      rankingProfiles: {
        name: string;
        scoring: string;
        weights: { feature: string; weight: number }[];
      }[];
    }>('{ rankingProfiles { name scoring weights { feature weight } } }');
    expect(rankingProfiles.find((profile) => profile.name === 'default')).toEqual({
      name: 'default',
      scoring: 'HAND',
      weights: [{ feature: 'recency', weight: 3 }],
    });
  });

  it("ends an experiment and activates the promoted arm's version together, or neither", async () => {
    const url = context.config.postgres.url;
    const { createExperiment } = await ops<{ createExperiment: { id: string } }>(
      `mutation($experiment: ExperimentInput!) { createExperiment(experiment: $experiment) { id } }`,
      {
        experiment: {
          name: 'back-to-blinded',
          arms: [
            { name: 'current', share: 50 },
            { name: 'blinded', modelVersion: blindedId, share: 50 },
          ],
        },
      },
    );
    const id = createExperiment.id;
    await ops(`mutation { startExperiment(id: "${id}") { status } }`);
    const activeBefore = (await ops<{ activeModel: { id: string } }>('{ activeModel { id } }'))
      .activeModel.id;
    // The activation's log entry fails: the experiment's end must roll back with it.
    await query(
      url,
      `CREATE FUNCTION refuse_activation() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN RAISE EXCEPTION 'activation refused by the test'; END $$`,
    );
    await query(
      url,
      `CREATE TRIGGER refuse_activation BEFORE INSERT ON model_activations
         FOR EACH ROW EXECUTE FUNCTION refuse_activation()`,
    );
    const refused = await graphql(
      app,
      `mutation { promoteArm(experimentId: "${id}", arm: "blinded") { status } }`,
    );
    expect(refused.errors).toBeDefined();
    const [still] = await query<{ status: string }>(
      url,
      'SELECT status FROM experiments WHERE id = $1',
      [id],
    );
    expect(still.status).toBe('running');
    expect(
      (await ops<{ activeModel: { id: string } }>('{ activeModel { id } }')).activeModel.id,
    ).toBe(activeBefore);

    await query(url, 'DROP TRIGGER refuse_activation ON model_activations');
    await query(url, 'DROP FUNCTION refuse_activation()');
    const { promoteArm } = await ops<{ promoteArm: { status: string } }>(
      `mutation { promoteArm(experimentId: "${id}", arm: "blinded") { status } }`,
    );
    expect(promoteArm.status).toBe('STOPPED');
    expect(
      (await ops<{ activeModel: { id: string } }>('{ activeModel { id } }')).activeModel.id,
    ).toBe(blindedId);
  });
});

describe("a version's online counts", () => {
  const own = contextWithPool();

  it("join a slate's events stamped by a producer clock behind the server's", async () => {
    const servedAt = new Date();
    const minutesBefore = (minutes: number) => new Date(servedAt.getTime() - minutes * 60_000);
    await new ServedLogRepository(own.pool).insertSlates([
      {
        requestId: 'counted-1',
        userId: 'cu-1',
        operation: 'rank',
        servedAt,
        modelVersion: '7',
        profile: 'default',
        experimentId: null,
        arm: null,
        candidates: 2,
        features: [],
        itemIds: ['ci-1', 'ci-2'],
        scores: [2, 1],
        values: [],
      },
    ]);
    // The storefront's clock runs 10 minutes behind: its events seem older than the slate.
    const events = [
      ['impression', 'ci-1', 10],
      ['impression', 'ci-2', 10],
      ['click', 'ci-1', 9],
    ] as const;
    await own.pool.query(
      `INSERT INTO events (event_id, type, user_id, item_id, ts, request_id)
       SELECT 'ce-' || i, type, 'cu-1', item_id, ts, 'counted-1'
       FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS e(type, item_id, ts, i)`,
      [
        events.map(([type]) => type),
        events.map(([, itemId]) => itemId),
        events.map(([, , minutes]) => minutesBefore(minutes)),
      ],
    );
    const counts = await new ExperimentsRepository(own.pool).versionCounts(
      '7',
      minutesBefore(1),
      new Date(servedAt.getTime() + 1),
    );
    expect(counts).toEqual({
      slates: 1,
      impressions: 2,
      clicks: 1,
      addToCarts: 0,
      purchases: 0,
    });
  });
});
