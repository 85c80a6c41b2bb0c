import { Kafka, logLevel } from 'kafkajs';
import type { AppConfig } from '../../src/config/config';
import { SERVED_LOG_TOPICS } from '../../src/modules/served-log/served-slate.codec';

function admin(config: AppConfig) {
  return new Kafka({
    clientId: 'bench',
    brokers: [...config.kafka.brokers],
    logLevel: logLevel.NOTHING,
  }).admin();
}

/** The served-slate topic under `topicPrefix`, so that a bench server's slates have somewhere to go. */
export async function createServedTopic(config: AppConfig, topicPrefix: string): Promise<void> {
  const kafka = admin(config);
  try {
    await kafka.connect();
    await kafka.createTopics({
      topics: [{ topic: `${topicPrefix}${SERVED_LOG_TOPICS.slates}`, numPartitions: 6 }],
      waitForLeaders: true,
    });
  } catch (error) {
    throw new Error(
      `no Kafka broker at ${config.kafka.brokers.join(',')} (start one: npm run stack): ${String(error)}`,
    );
  } finally {
    await kafka.disconnect();
  }
}

/** Best effort: the served-slate topic under `topicPrefix` deleted. */
export async function deleteServedTopic(config: AppConfig, topicPrefix: string): Promise<void> {
  const kafka = admin(config);
  try {
    await kafka.connect();
    await kafka.deleteTopics({ topics: [`${topicPrefix}${SERVED_LOG_TOPICS.slates}`] });
  } catch {
    // A topic left behind costs a little disk; the run's figures stand.
  } finally {
    await kafka.disconnect();
  }
}
