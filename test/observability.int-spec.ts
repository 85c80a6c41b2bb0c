import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { parseAllDocuments, stringify } from 'yaml';
import { IngestKafkaRepository } from '../src/modules/ingest/ingest-kafka.repository';
import { TOPICS } from '../src/modules/ingest/ingest.service';
import { startApp } from './support/app';
import { eventMessage, userEvent } from './support/factories';
import { produceRaw } from './support/ingest-helpers';
import { eventually } from './support/poll';
import { createTestContext, TestContext } from './support/test-context';

interface Built {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  spec?: { groups: { name: string; rules: { alert: string; expr: string }[] }[] };
}

interface Dashboard {
  panels: { title: string; targets: { expr: string }[] }[];
}

const root = path.resolve(__dirname, '..');
/** The service's metric families: every name an expression reads must begin with one. */
const OWN_PREFIXES =
  /^(auth|embedding|experiment|graphql|ingest|model|ranking|served_log|serving|training)_/;

const built = parseAllDocuments(
  execFileSync('kubectl', ['kustomize', path.join(root, 'k8s/observability')], {
    encoding: 'utf8',
  }),
).map((document) => document.toJS() as Built);
const rules = built.find((manifest) => manifest.kind === 'PrometheusRule');
const dashboardMap = built.find((manifest) => manifest.kind === 'ConfigMap');
const dashboard = JSON.parse(dashboardMap?.data?.['recsys-dashboard.json'] ?? '{}') as Dashboard;
const alerts = rules?.spec?.groups.flatMap((group) => group.rules) ?? [];

/** The service's metric names a PromQL expression reads (histogram suffixes kept). */
function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"[^"]*"/g, '""');
  return [...withoutStrings.matchAll(/[a-z_][a-z0-9_]*/g)]
    .map((match) => match[0])
    .filter((name) => OWN_PREFIXES.test(name));
}

/**
 * The observability kit (k8s/observability): alert rules and the Grafana dashboard read only
 * metrics the service exports (checked against a running app's /metrics, every role in one),
 * and promtool accepts the rules where Debian's prometheus package is installed.
 */
describe('observability: Prometheus rules and the Grafana dashboard', () => {
  let context: TestContext;
  let app: NestFastifyApplication;
  let exported: Set<string>;

  beforeAll(async () => {
    context = await createTestContext();
    await context.createTopics([{ name: TOPICS.events, partitions: 2 }]);
    await context.createServiceTopics();
    app = await startApp(context.config, { role: 'all' });
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    exported = new Set<string>();
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      exported.add(name);
      if (type === 'histogram') {
        for (const suffix of ['_bucket', '_sum', '_count']) exported.add(`${name}${suffix}`);
      }
    }
  }, 60_000);

  afterAll(async () => {
    await app.close();
    await context.cleanup();
  });

  it('builds a PrometheusRule and a dashboard ConfigMap Grafana’s sidecar picks up', async () => {
    expect(built.map((manifest) => `${manifest.kind}/${manifest.metadata.name}`).sort()).toEqual([
      'ConfigMap/recsys-grafana-dashboard',
      'PrometheusRule/recsys',
    ]);
    const { ConfigMap } = (await import('kubernetes-models/v1/ConfigMap')) as {
      ConfigMap: new (data: unknown) => { validate(): void };
    };
    new ConfigMap(dashboardMap).validate();
    expect(dashboardMap?.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
    expect(alerts.map((rule) => rule.alert)).toEqual(
      expect.arrayContaining([
        'RecsysIngestLagHigh',
        'RecsysConsumerNotRunning',
        'RecsysRankP99OverBudget',
        'RecsysModelLoadFailing',
        'RecsysTrainingFailing',
        'RecsysModelStale',
        'RecsysDeadLetterRateHigh',
        'RecsysRedisFallbackActive',
      ]),
    );
    expect(dashboard.panels.length).toBeGreaterThan(10);
  });

  it('reads only metrics the service exports', () => {
    const read = [
      ...alerts.map((rule) => ({ where: `alert ${rule.alert}`, expr: rule.expr })),
      ...dashboard.panels.flatMap((panel) =>
        panel.targets.map((target) => ({ where: `panel "${panel.title}"`, expr: target.expr })),
      ),
    ];
    const missing = read.flatMap(({ where, expr }) =>
      metricNames(expr)
        .filter((name) => !exported.has(name))
        .map((name) => `${where}: ${name}`),
    );
    expect(missing).toEqual([]);
    // The check has teeth: every expression names at least one of the service's metrics.
    expect(read.every(({ expr }) => metricNames(expr).length > 0)).toBe(true);
  });

  it('reads consumer lag from the broker: what a group has not committed', async () => {
    const kafka = app.get(IngestKafkaRepository, { strict: false });
    await produceRaw(
      context.config,
      TOPICS.events,
      Array.from({ length: 5 }, (_, i) =>
        eventMessage(userEvent({ userId: `lag-${i}`, itemId: 'lag-item' })),
      ),
    );
    const total = async (groupId: string) =>
      [...(await kafka.consumerLag(groupId, TOPICS.events)).values()].reduce((a, b) => a + b, 0);
    expect(await total('a-group-that-never-consumed')).toBe(5);
    const caughtUp = await eventually(() => total(context.config.ingest.eventsGroupId), 30_000, {
      what: 'the ingest group caught up',
      until: (lag) => lag === 0,
    });
    expect(caughtUp.value).toBe(0);
  });

  it('passes promtool check rules (where promtool is installed)', () => {
    const found = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
    if (found.error !== undefined) {
      process.stdout.write('promtool not installed (apt-get install prometheus): not run\n');
      return;
    }
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'rules-')), 'rules.yaml');
    writeFileSync(file, stringify(rules?.spec));
    const checked = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    expect(`${checked.stdout}${checked.stderr}`).toMatch(`SUCCESS: ${alerts.length} rules found`);
    expect(checked.status).toBe(0);
  });
});
