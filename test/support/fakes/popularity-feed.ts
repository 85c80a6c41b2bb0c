import type { StoredPopularity } from '../../../src/modules/online-state/online-state.schema';
import type {
  PopularityChange,
  PopularityFeed,
} from '../../../src/modules/online-state/online-state.store';
import type { PopularityKeeper } from '../../../src/modules/online-state/popularity-mirror';

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

  popularityOf(itemIds: readonly string[]): Promise<(StoredPopularity | undefined)[]> {
    if (this.fail) return Promise.reject(new Error('redis down'));
    return Promise.resolve(itemIds.map((itemId) => this.values.get(itemId)));
  }
}

/** A keeper holding a fixed set of items in a map. */
export class MapKeeper implements PopularityKeeper {
  readonly values = new Map<string, StoredPopularity>();

  constructor(private readonly held: ReadonlySet<string>) {}

  holds(itemId: string): boolean {
    return this.held.has(itemId);
  }

  replaceAll(values: readonly (readonly [string, StoredPopularity])[]): void {
    this.values.clear();
    for (const [itemId, stored] of values) this.values.set(itemId, stored);
  }

  set(itemId: string, stored: StoredPopularity): void {
    this.values.set(itemId, stored);
  }
}
