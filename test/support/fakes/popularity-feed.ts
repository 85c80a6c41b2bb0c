import type { StoredPopularity } from '../../../src/modules/online-state/online-state.schema';
import type {
  PopularityChange,
  PopularityFeed,
} from '../../../src/modules/online-state/online-state.store';

/** An in-memory `pop-changes` stream and `item-pop:*` keys. */
export class FakeFeed implements PopularityFeed {
  readonly values = new Map<string, StoredPopularity>();
  readonly entries: PopularityChange[] = [];
  fail = false;
  private seq = 0;

  write(itemId: string, stored: StoredPopularity): void {
    this.values.set(itemId, stored);
    this.entries.push({ id: `1-${++this.seq}`, reset: false, items: [[itemId, stored]] });
  }

  clear(): void {
    this.values.clear();
    this.entries.push({ id: `1-${++this.seq}`, reset: true, items: [] });
  }

  lastPopularityChange(): Promise<string> {
    return Promise.resolve(this.entries.at(-1)?.id ?? '0-0');
  }

  popularityChangesAfter(id: string, count: number): Promise<PopularityChange[]> {
    if (this.fail) return Promise.reject(new Error('redis down'));
    const after = Number(id.split('-')[1]);
    return Promise.resolve(
      this.entries.filter((entry) => Number(entry.id.split('-')[1]) > after).slice(0, count),
    );
  }

  async *allPopularity(): AsyncIterable<[string, StoredPopularity][]> {
    await Promise.resolve();
    yield [...this.values];
  }
}
