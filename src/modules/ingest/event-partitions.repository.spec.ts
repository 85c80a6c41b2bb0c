import { dayOf } from '../../common/daily-partitions';
import { dayOfPartition, eventsPartitionName } from './event-partitions.repository';

describe('events partition names', () => {
  it('name the UTC day a time falls on, and read back to it', () => {
    const lastMs = dayOf(new Date('2025-03-09T23:59:59.999Z'));
    const midnight = dayOf(new Date('2025-03-10T00:00:00.000Z'));
    expect(eventsPartitionName(lastMs)).toBe('events_p20250309');
    expect(eventsPartitionName(midnight)).toBe('events_p20250310');
    expect(dayOfPartition('events_p20250310')).toBe(midnight);
  });

  it('ignore tables that are not daily partitions', () => {
    expect(dayOfPartition('events_default')).toBeUndefined();
    expect(dayOfPartition('served_slates_p20250310')).toBeUndefined();
  });
});
