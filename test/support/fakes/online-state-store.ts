import type { ItemPopularity } from '../../../src/modules/online-state/online-state.schema';
import type {
  Interaction,
  OnlineStateStore,
} from '../../../src/modules/online-state/online-state.store';

/**
 * An online-state store in memory, for OnlineStateReader's Redis and PostgreSQL sides: `stalled`
 * makes every read wait until `answer()` (a Redis that does not answer); `reads` counts them.
 */
export class FakeOnlineStateStore implements OnlineStateStore {
  available = true;
  stalled = false;
  reads = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly history: readonly Interaction[]) {}

  /** Lets every stalled read through. */
  answer(): void {
    for (const release of this.waiting.splice(0)) release();
  }

  private async reply<T>(value: T): Promise<T> {
    this.reads += 1;
    if (this.stalled) await new Promise<void>((resolve) => this.waiting.push(resolve));
    return value;
  }

  recent(_userId: string, limit: number): Promise<Interaction[]> {
    return this.reply(this.history.slice(0, limit));
  }

  interestVersion(): Promise<string | undefined> {
    return this.reply('1');
  }

  popularity(itemIds: readonly string[]): Promise<(ItemPopularity | undefined)[]> {
    return this.reply(itemIds.map(() => undefined));
  }

  popularItems(): Promise<string[]> {
    return this.reply([]);
  }
}
