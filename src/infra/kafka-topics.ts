import { Kafka, logLevel } from 'kafkajs';
import type { AppConfig } from '../config/config';
import type { Logger } from '../common/logger';
import { brokerConnection, kafkaLogCreator } from './kafka';

/** A topic the service reads or writes, unprefixed, with the partitions it gets when created. */
export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  /** Its `retention.ms`; absent: the broker's `log.retention.*`. */
  readonly retentionMs?: number;
}

export interface ProvisionedTopic {
  /** With the configured prefix, as the broker knows it. */
  readonly name: string;
  readonly partitions: number;
  /** False: it was there already and was left as it is. */
  readonly created: boolean;
}

/**
 * Creates the topics that do not exist yet, under the configured prefix, and waits for their
 * leaders; a topic that exists is never altered (adding partitions moves keys between them: an
 * operator's decision, docs/operations/scaling.md). Run by `node dist/main.js topics`, never by
 * serving pods; safe to run again and beside another run.
 */
export async function provisionTopics(
  config: AppConfig['kafka'],
  topics: readonly TopicSpec[],
  logger: Logger,
): Promise<ProvisionedTopic[]> {
  const admin = new Kafka({
    clientId: `${config.clientId}-topics`,
    ...brokerConnection(config),
    logLevel: logLevel.WARN,
    logCreator: kafkaLogCreator(logger.child({ component: 'kafkajs' })),
  }).admin();
  await admin.connect();
  try {
    const named = topics.map((topic) => ({ ...topic, name: `${config.topicPrefix}${topic.name}` }));
    const existing = new Set(await admin.listTopics());
    const missing = named.filter((topic) => !existing.has(topic.name));
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({
          topic: topic.name,
          numPartitions: topic.partitions,
          // -1: the broker's default.replication.factor.
          replicationFactor: config.newTopics.replicationFactor ?? -1,
          configEntries:
            topic.retentionMs === undefined
              ? []
              : [{ name: 'retention.ms', value: String(topic.retentionMs) }],
        })),
      });
    }
    const metadata = await admin.fetchTopicMetadata({ topics: named.map((topic) => topic.name) });
    const partitions = new Map(
      metadata.topics.map((topic) => [topic.name, topic.partitions.length]),
    );
    return named.map((topic) => ({
      name: topic.name,
      partitions: partitions.get(topic.name) ?? 0,
      created: !existing.has(topic.name),
    }));
  } finally {
    await admin.disconnect();
  }
}
