import { USER_BUCKETS, userBucket } from '../../../src/modules/online-state/online-state.schema';
import type {
  InterestChange,
  InterestChangeFeed,
} from '../../../src/modules/online-state/online-state.store';

/** In-memory `interest-changes` streams, one per user bucket, as the ingest script writes them. */
export class FakeInterestChangeFeed implements InterestChangeFeed {
  readonly streams: InterestChange[][] = Array.from({ length: USER_BUCKETS }, () => []);
  fail = false;
  private seq = 0;

  /** A batch in which these users interacted. */
  interacted(...userIds: string[]): void {
    for (const userId of userIds) {
      this.streams[userBucket(userId)].push({
        id: `1-${++this.seq}`,
        reset: false,
        userIds: [userId],
      });
    }
  }

  clear(): void {
    for (const stream of this.streams)
      stream.push({ id: `1-${++this.seq}`, reset: true, userIds: [] });
  }

  lastInterestChanges(): Promise<string[]> {
    if (this.fail) return Promise.reject(new Error('redis down'));
    return Promise.resolve(this.streams.map((stream) => stream.at(-1)?.id ?? '0-0'));
  }

  interestChangesAfter(bucket: number, id: string, count: number): Promise<InterestChange[]> {
    if (this.fail) return Promise.reject(new Error('redis down'));
    const after = Number(id.split('-')[1]);
    return Promise.resolve(
      this.streams[bucket]
        .filter((entry) => Number(entry.id.split('-')[1]) > after)
        .slice(0, count),
    );
  }
}
