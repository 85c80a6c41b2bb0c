import { readFileSync } from 'node:fs';
import path from 'node:path';
import { serviceTopics } from './service-topics';

describe('serviceTopics', () => {
  it('lists the topics the local stack creates (scripts/stack.sh), no more, no fewer', () => {
    const script = readFileSync(path.resolve(__dirname, '../scripts/stack.sh'), 'utf8');
    const line = /^TOPICS=\((.*)\)$/m.exec(script)?.[1];
    expect(line).toBeDefined();
    const stack = (line ?? '').split(/\s+/).map((entry) => entry.split(':')[0]);
    expect(
      serviceTopics({ partitions: 6, deadLetterRetentionDays: 30 })
        .map((topic) => topic.name)
        .sort(),
    ).toEqual(stack.sort());
  });

  it('gives the consumed topics the partitions asked for, their dead-letter topics one and the retention', () => {
    const specs = Object.fromEntries(
      serviceTopics({ partitions: 12, deadLetterRetentionDays: 2 }).map((topic) => [
        topic.name,
        [topic.partitions, topic.retentionMs],
      ]),
    );
    expect(specs).toEqual({
      'user.events': [12, undefined],
      'catalog.items': [12, undefined],
      'rank.served': [12, undefined],
      'user.events.dlq': [1, 172_800_000],
      'catalog.items.dlq': [1, 172_800_000],
      'rank.served.dlq': [1, 172_800_000],
    });
  });
});
