import { existsSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import puppeteer, { Browser, Page } from 'puppeteer-core';
import { TOPICS } from '../src/modules/ingest/ingest.service';
import { RegistryRepository } from '../src/modules/registry/registry.repository';
import { ARTIFACT_STORE, ArtifactStore } from '../src/modules/registry/registry.types';
import { DEFAULT_ARCHITECTURE } from '../src/modules/training/model/architecture';
import { TrainingService } from '../src/modules/training/training.service';
import { generateCatalog } from '../src/synthetic';
import { startCategoryStack } from './support/category-stack';
import { eventMessage, userEvent } from './support/factories';
import { graphql } from './support/graphql';
import { produceRaw, query } from './support/ingest-helpers';
import { eventually } from './support/poll';
import type { TestContext } from './support/test-context';
import { untrainedArtifact } from './support/untrained-model';

/** Debian's package; CHROMIUM_PATH points elsewhere. `npm test` installs it where it can. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Where the screenshots of every page go (gitignored). */
const SCREENSHOTS = path.resolve(__dirname, '..', 'reports', 'console');

const catalog = generateCatalog({ items: 60, seed: 'console', categories: 3, idPrefix: 'co-' });
const screenshot = (name: string) => path.join(SCREENSHOTS, `${name}.png`) as `${string}.png`;
const describeWithBrowser = existsSync(CHROMIUM) ? describe : describe.skip;
if (!existsSync(CHROMIUM)) {
  process.stdout.write(`console browser tests skipped: no Chromium at ${CHROMIUM}\n`);
}

/**
 * The ops console in a real headless Chromium against the real stack: every page loads with data,
 * the inspector shows a user's recommendations with their parts, and a rollback clicked in the
 * console is what `modelVersions` says afterwards. Screenshots land in reports/console/.
 */
describeWithBrowser('ops console in a browser', () => {
  let context: TestContext;
  let app: NestFastifyApplication;
  let browser: Browser;
  let page: Page;
  let base = '';
  let first = '';
  let second = '';

  beforeAll(async () => {
    ({ context, app } = await startCategoryStack(catalog.items, {
      EXPERIMENT_REFRESH_MS: '200',
      MODEL_POLL_INTERVAL_MS: '500',
    }));
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    // A user with history (clicks on their category), and a second version to activate.
    await produceRaw(
      context.config,
      TOPICS.events,
      catalog.items.slice(0, 12).map((item, i) =>
        eventMessage(
          userEvent({
            userId: 'console-user',
            itemId: item.itemId,
            type: 'click',
            timestamp: new Date(Date.now() - (12 - i) * 1000).toISOString(),
          }),
        ),
      ),
    );
    await eventually(
      async () =>
        (
          await query<{ n: number }>(
            context.config.postgres.url,
            "SELECT count(*)::int AS n FROM events WHERE user_id = 'console-user'",
          )
        )[0].n,
      30_000,
      { what: 'clicks stored', until: (n) => n === 12 },
    );
    first = (await ops<{ activeModel: { id: string } }>('{ activeModel { id } }')).activeModel.id;
    const registry = app.get(RegistryRepository, { strict: false });
    const encoderId = app.get(TrainingService, { strict: false }).encoderId;
    second = await registry.insertTrainingVersion({
      parentId: first,
      encoderId,
      triggeredBy: 'test',
    });
    await app
      .get<symbol, ArtifactStore>(ARTIFACT_STORE, { strict: false })
      .put(
        second,
        untrainedArtifact(
          { ...DEFAULT_ARCHITECTURE, dimension: 32, idEmbedding: false },
          encoderId,
          'second',
        ),
      );
    await registry.setVersionStatus(second, 'candidate', null);
    await ops(`mutation { activateModelVersion(id: "${second}") { id } }`);
    const { createExperiment } = await ops<{ createExperiment: { id: string } }>(
      `mutation { createExperiment(experiment: { name: "console-ab", arms: [
        { name: "first", modelVersion: "${first}", share: 50 },
        { name: "second", modelVersion: "${second}", share: 50 }] }) { id } }`,
    );
    await ops(`mutation { startExperiment(id: "${createExperiment.id}") { id } }`);
    mkdirSync(SCREENSHOTS, { recursive: true });
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    page.on('dialog', (dialog) => void dialog.accept());
  }, 120_000);

  afterAll(async () => {
    await browser.close();
    await app.close();
    await context.cleanup();
  });

  async function ops<T>(text: string): Promise<T> {
    const response = await graphql<T>(app, text);
    if (response.data === undefined || response.errors !== undefined) {
      throw new Error(JSON.stringify(response.errors));
    }
    return response.data;
  }

  /** Opens a console page and waits until it has its data; fails on an error it shows. */
  async function open(hash: string, name: string): Promise<void> {
    await page.goto(`${base}/console#/${hash}`);
    await page.waitForSelector(`body[data-page="${name}"]`, { timeout: 20_000 });
    expect(
      await inPage<string | null>("document.querySelector('#error')?.textContent ?? null"),
    ).toBeNull();
    await page.screenshot({ path: screenshot(name), fullPage: true });
  }

  /** Evaluates `expression` in the page (a string: the tests' types have no DOM). */
  const inPage = <T>(expression: string) => page.evaluate(expression) as Promise<T>;
  const text = (selector: string) =>
    inPage<string>(`document.querySelector(${JSON.stringify(selector)})?.textContent ?? ''`);
  const rows = (selector: string) =>
    inPage<number>(`document.querySelectorAll(${JSON.stringify(`${selector} tbody tr`)}).length`);

  it('overview: served version, health, operations from /metrics, recent versions', async () => {
    await open('overview', 'overview');
    expect(await text('#card-served')).toContain(second);
    expect(await text('#card-health')).toContain('ok');
    expect(await text('#card-experiment')).toContain('console-ab');
    expect(await rows('#operations')).toBeGreaterThan(0);
    expect(await rows('#versions')).toBe(2);
    expect(await page.$('#runs-table')).not.toBeNull();
  });

  it('experiments: both arms with their figures and the CTR chart', async () => {
    await open('experiments', 'experiments');
    expect(await rows('#arms')).toBe(2);
    expect(await text('#arms')).toContain('CONTROL');
    expect(await page.$('#ctr-chart')).not.toBeNull();
  });

  it('inspector: a user’s recommendations with each item’s parts', async () => {
    await open('inspector/console-user', 'inspector');
    expect(await rows('#recommended')).toBe(10);
    const headers = await inPage<string[]>(
      "[...document.querySelectorAll('#recommended th')].map((th) => th.textContent)",
    );
    expect(headers).toEqual(expect.arrayContaining(['model', 'popularity']));
    expect(await text('#served-by')).toMatch(/experiment console-ab arm (first|second)/);
    expect(await rows('#interactions')).toBe(12);
    expect(await text('#interactions')).toContain(catalog.items[11].title);
  });

  it('item: its text, events per day and nearest items', async () => {
    const clicked = catalog.items[0];
    await open(`item/${clicked.itemId}`, 'item');
    expect(await text('#item-title')).toBe(clicked.title);
    expect(await rows('#nearest')).toBe(10);
    // The category model puts an item's own category nearest.
    const nearest = await inPage<string[]>(
      "[...document.querySelectorAll('#nearest tbody tr td:first-child')].map((td) => td.textContent)",
    );
    const category = new Map(catalog.items.map((item) => [item.itemId, item.category]));
    expect(category.get(nearest[0])).toBe(clicked.category);
    expect(await page.$('#events-chart')).not.toBeNull();
  });

  it('training run: queued from the console, followed to its end', async () => {
    await open('training', 'training');
    await page.click('#train-full');
    await page.waitForFunction(
      "/SUCCEEDED|FAILED/.test(document.querySelector('#run-status')?.textContent ?? '')",
      { timeout: 120_000 },
    );
    expect(await text('#run-status')).toBe('SUCCEEDED');
    // Every epoch of the interest model charted (TRAIN_EPOCHS is 3 here).
    expect(await inPage<string>('document.body.dataset.epochs')).toBe('3');
    // The overview lists it among the recent runs.
    await open('overview', 'overview');
    expect(await text('#runs-table')).toContain('SUCCEEDED');
    await page.screenshot({ path: screenshot('training'), fullPage: true });
  }, 150_000);

  it('model versions: a rollback clicked in the console is what modelVersions says', async () => {
    await ops(
      `mutation { stopExperiment(id: "${(await ops<{ experiments: { id: string }[] }>('{ experiments(first: 1) { id } }')).experiments[0].id}") { id } }`,
    );
    await open('models', 'models');
    const active = async () =>
      (await ops<{ activeModel: { id: string } }>('{ activeModel { id } }')).activeModel.id;
    const before = await active();
    await page.click('#rollback');
    const after = await eventually(active, 10_000, {
      what: 'the rollback',
      until: (id) => id !== before,
    });
    await page.waitForSelector(`tr[data-version="${after.value}"] .status-active`);
    await page.screenshot({ path: screenshot('models'), fullPage: true });
    const { modelVersions } = await ops<{ modelVersions: { id: string; status: string }[] }>(
      '{ modelVersions(first: 10) { id status } }',
    );
    expect(modelVersions.find((version) => version.id === after.value)?.status).toBe('ACTIVE');
    expect(modelVersions.find((version) => version.id === before)?.status).toBe('RETIRED');
  });
});
