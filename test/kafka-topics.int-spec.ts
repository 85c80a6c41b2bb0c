import { execFileSync } from 'node:child_process';
import { Admin, ConfigResourceTypes } from 'kafkajs';
import pino from 'pino';
import { createLogger } from '../src/common/logger';
import { provisionTopics } from '../src/infra/kafka-topics';
import { TOPICS } from '../src/modules/ingest/ingest.service';
import { serviceTopics } from '../src/service-topics';
import { eventMessage, userEvent } from './support/factories';
import { countEvents, kafkaFor, produceRaw, startIngest } from './support/ingest-helpers';
import { eventually } from './support/poll';
import { createTestContext, TestContext } from './support/test-context';

jest.setTimeout(60_000);

describe('topic provisioning on the real broker', () => {
  let context: TestContext;
  let admin: Admin;
  const prefixed = (name: string) => `${context.config.kafka.topicPrefix}${name}`;

  beforeAll(async () => {
    context = await createTestContext();
    admin = kafkaFor(context.config).admin();
    await admin.connect();
  });

  afterAll(async () => {
    const ours = (await admin.listTopics()).filter((name) =>
      name.startsWith(context.config.kafka.topicPrefix),
    );
    await admin.deleteTopics({ topics: ours });
    await admin.disconnect();
    await context.cleanup();
  });

  it('creates the missing topics with their partitions and leaves an existing one as it is', async () => {
    // An operator made user.events by hand, with fewer partitions than the setting.
    await context.createTopics([{ name: TOPICS.events, partitions: 2 }]);
    const logger = createLogger('silent');

    const first = await provisionTopics(
      context.config.kafka,
      serviceTopics({ partitions: 3, deadLetterRetentionDays: 9 }),
      logger,
    );

    expect(first).toEqual([
      { name: prefixed('user.events'), partitions: 2, created: false },
      { name: prefixed('catalog.items'), partitions: 3, created: true },
      { name: prefixed('rank.served'), partitions: 3, created: true },
      { name: prefixed('user.events.dlq'), partitions: 1, created: true },
      { name: prefixed('catalog.items.dlq'), partitions: 1, created: true },
      { name: prefixed('rank.served.dlq'), partitions: 1, created: true },
    ]);
    const metadata = await admin.fetchTopicMetadata({ topics: first.map((topic) => topic.name) });
    expect(
      Object.fromEntries(metadata.topics.map((topic) => [topic.name, topic.partitions.length])),
    ).toEqual(Object.fromEntries(first.map((topic) => [topic.name, topic.partitions])));
    // Every partition has a leader: producers can write at once.
    for (const topic of metadata.topics) {
      for (const partition of topic.partitions) expect(partition.leader).toBeGreaterThanOrEqual(0);
    }

    // Dead letters are kept the configured days; the consumed topics keep the broker's retention.
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: ['user.events.dlq', 'rank.served.dlq', 'catalog.items'].map((name) => ({
        type: ConfigResourceTypes.TOPIC,
        name: prefixed(name),
        configNames: ['retention.ms'],
      })),
    });
    expect(
      Object.fromEntries(
        described.resources.map((resource) => {
          const entry = resource.configEntries.find(
            (config) => config.configName === 'retention.ms',
          );
          return [resource.resourceName, [entry?.configValue, entry?.isDefault]];
        }),
      ),
    ).toEqual({
      [prefixed('user.events.dlq')]: [String(9 * 86_400_000), false],
      [prefixed('rank.served.dlq')]: [String(9 * 86_400_000), false],
      [prefixed('catalog.items')]: [expect.any(String), true],
    });

    const again = await provisionTopics(
      context.config.kafka,
      serviceTopics({ partitions: 3, deadLetterRetentionDays: 9 }),
      logger,
    );
    expect(again).toEqual(first.map((topic) => ({ ...topic, created: false })));
  });
});

/** This process's open connections to the brokers (Linux `ss`). */
function brokerConnections(brokers: readonly string[]): number {
  const lines = brokers.flatMap((broker) =>
    execFileSync('ss', ['-tnHp', 'state', 'established', 'dst', broker], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => line.includes(`pid=${String(process.pid)},`)),
  );
  return lines.length;
}

describe('an ingest role started before its topics exist', () => {
  let context: TestContext;

  beforeAll(async () => {
    context = await createTestContext();
  });
  afterAll(async () => {
    await context.cleanup();
  });

  it('says which topic is missing, then consumes once it is created', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    const ingest = await startIngest(context.config, undefined, logger);
    try {
      const missing = `topic ${context.config.kafka.topicPrefix}user.events does not exist`;
      const attempts = () => lines.filter((line) => line.includes(missing)).length;
      await eventually(() => attempts() >= 2, 20_000, {
        what: 'the missing topic named in the log',
      });
      // Each failed attempt disconnects its consumer: retrying leaves no connection behind. A
      // leak adds one or more per attempt; a connection the role opens once meanwhile (it was +1
      // in one fresh-clone run) is not one.
      const connected = brokerConnections(context.config.kafka.brokers);
      await eventually(() => attempts() >= 5, 30_000, { what: 'three more attempts' });
      expect(brokerConnections(context.config.kafka.brokers)).toBeLessThanOrEqual(connected + 1);

      await context.createServiceTopics();
      await produceRaw(context.config, TOPICS.events, [eventMessage(userEvent())]);

      // The consumer's next start attempt (every 5 s) finds the topic and reads from its start.
      await eventually(
        async () => (await countEvents(context.config.postgres.url)).rows === 1,
        30_000,
        {
          what: 'the event stored',
        },
      );
    } finally {
      await ingest.close();
    }
  });
});
