import { serviceTopics } from './service-topics';

describe('serviceTopics', () => {
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
