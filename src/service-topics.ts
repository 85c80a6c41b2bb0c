import type { TopicSpec } from './infra/kafka-topics';
import { TOPICS } from './modules/ingest/ingest.service';
import { SERVED_LOG_TOPICS } from './modules/served-log/served-slate.codec';

/**
 * Every topic the service reads or writes, unprefixed: the three it consumes with `partitions`,
 * their dead-letter topics with one (a trickle, read by people).
 */
export function serviceTopics(partitions: number): TopicSpec[] {
  return [
    { name: TOPICS.events, partitions },
    { name: TOPICS.items, partitions },
    { name: SERVED_LOG_TOPICS.slates, partitions },
    { name: TOPICS.eventsDlq, partitions: 1 },
    { name: TOPICS.itemsDlq, partitions: 1 },
    { name: SERVED_LOG_TOPICS.deadLetters, partitions: 1 },
  ];
}
