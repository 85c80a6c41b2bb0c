import type { AppConfig } from './config/config';
import type { TopicSpec } from './infra/kafka-topics';
import { TOPICS } from './modules/ingest/ingest.service';
import { SERVED_LOG_TOPICS } from './modules/served-log/served-slate.codec';

const DAY_MS = 86_400_000;

/**
 * Every topic the service reads or writes, unprefixed: the three it consumes with `partitions`,
 * their dead-letter topics with one (a trickle, read by people) and their own retention.
 */
export function serviceTopics({
  partitions,
  deadLetterRetentionDays,
}: Pick<AppConfig['kafka']['newTopics'], 'partitions' | 'deadLetterRetentionDays'>): TopicSpec[] {
  const deadLetters = { partitions: 1, retentionMs: deadLetterRetentionDays * DAY_MS };
  return [
    { name: TOPICS.events, partitions },
    { name: TOPICS.items, partitions },
    { name: SERVED_LOG_TOPICS.slates, partitions },
    { name: TOPICS.eventsDlq, ...deadLetters },
    { name: TOPICS.itemsDlq, ...deadLetters },
    { name: SERVED_LOG_TOPICS.deadLetters, ...deadLetters },
  ];
}
