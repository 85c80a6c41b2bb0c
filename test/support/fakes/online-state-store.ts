import type { ItemPopularity } from '../../../src/modules/online-state/online-state.schema';
import type {
  Interaction,
  OnlineStateStore,
} from '../../../src/modules/online-state/online-state.store';

/**
 * An online-state store in memory, for OnlineStateReader's Redis and PostgreSQL sides: `stalled`
 * makes every read wait until `answer()` (a Redis that does not answer), `stalledServer` only
 * those of one server (a cluster's master: users `b-…` live on `b`, the others and the items on
 * `a`); `reads` counts them.
 */
export class FakeOnlineStateStore implements OnlineStateStore {
  available = true;
  stalled = false;
  stalledServer: string | undefined;
  reads = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly history: readonly Interaction[]) {}

  /** Lets every stalled read through. */
  answer(): void {
    for (const release of this.waiting.splice(0)) release();
  }

  userServer(userId: string): string {
    return userId.startsWith('b-') ? 'b' : 'a';
  }

  itemsServer(): string {
    return 'a';
  }

  private async reply<T>(server: string, value: T): Promise<T> {
    this.reads += 1;
    if (this.stalled || server === this.stalledServer) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    return value;
  }

  recent(userId: string, limit: number): Promise<Interaction[]> {
    return this.reply(this.userServer(userId), this.history.slice(0, limit));
  }

  interestVersion(userId: string): Promise<string | undefined> {
    return this.reply(this.userServer(userId), '1');
  }

  popularity(itemIds: readonly string[]): Promise<(ItemPopularity | undefined)[]> {
    return this.reply(
      this.itemsServer(),
      itemIds.map(() => undefined),
    );
  }

  popularItems(): Promise<string[]> {
    return this.reply(this.itemsServer(), []);
  }
}
