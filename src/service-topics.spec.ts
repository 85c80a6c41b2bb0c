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
      serviceTopics(6)
        .map((topic) => topic.name)
        .sort(),
    ).toEqual(stack.sort());
  });

  it('gives the consumed topics the partitions asked for and their dead-letter topics one', () => {
    const partitions = Object.fromEntries(
      serviceTopics(12).map((topic) => [topic.name, topic.partitions]),
    );
    expect(partitions).toEqual({
      'user.events': 12,
      'catalog.items': 12,
      'rank.served': 12,
      'user.events.dlq': 1,
      'catalog.items.dlq': 1,
      'rank.served.dlq': 1,
    });
  });
});
