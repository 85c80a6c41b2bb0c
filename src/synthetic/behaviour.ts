import { SyntheticCatalog, SyntheticItem } from './catalog';
import { cumulative, Random } from './prng';

export type SyntheticEventType = 'impression' | 'click' | 'add_to_cart' | 'purchase';

/** An event in the `user.events` contract. */
export interface SyntheticEvent {
  readonly schemaVersion: 1;
  readonly eventId: string;
  readonly type: SyntheticEventType;
  readonly userId: string;
  readonly itemId: string;
  readonly timestamp: string;
  readonly requestId: string;
  readonly position: number;
}

/** A user and the latent topic mixture their clicks were drawn from (the ground truth). */
export interface SyntheticUser {
  readonly userId: string;
  readonly interests: Readonly<Record<string, number>>;
}

export interface BehaviourOptions {
  readonly catalog: SyntheticCatalog;
  readonly users: number;
  /** Number of impression events; clicks, carts and purchases come on top. */
  readonly impressions: number;
  readonly seed: number | string;
  readonly from?: Date;
  readonly to?: Date;
  readonly slateSize?: number;
  /** Share of slate slots filled from the user's interests rather than global popularity. */
  readonly personalisedShare?: number;
  readonly idPrefix?: string;
  readonly userPrefix?: string;
}

export interface SyntheticBehaviour {
  readonly users: readonly SyntheticUser[];
  /** Sorted by timestamp. */
  readonly events: readonly SyntheticEvent[];
}

const CLICK_DELAY_MEAN_MS = 20_000;
const CART_DELAY_MEAN_MS = 120_000;
const PURCHASE_DELAY_MEAN_MS = 600_000;

/**
 * Users with latent topic interests (1-3 favourite categories plus a little of everything);
 * slates of impressions mixing interests and global popularity; a click's probability grows with
 * the user's interest in the item's category, the item's hidden quality and a better position.
 */
export function generateBehaviour(options: BehaviourOptions): SyntheticBehaviour {
  const random = new Random(`behaviour:${String(options.seed)}`);
  const { catalog } = options;
  if (catalog.items.length === 0) throw new Error('generateBehaviour needs a non-empty catalog');
  const from = (options.from ?? new Date('2025-01-01T00:00:00Z')).getTime();
  const to = (options.to ?? new Date('2025-01-31T00:00:00Z')).getTime();
  const slateSize = options.slateSize ?? 8;
  const personalised = options.personalisedShare ?? 0.5;
  const eventPrefix = options.idPrefix ?? `ev-${String(options.seed)}-`;
  const userPrefix = options.userPrefix ?? 'user-';
  const width = Math.max(6, String(options.users).length);

  const categories = catalog.categories;
  const byCategory = new Map<string, SyntheticItem[]>(categories.map((name) => [name, []]));
  for (const item of catalog.items) byCategory.get(item.category)?.push(item);
  const popularity = (item: SyntheticItem) => catalog.quality.get(item.itemId) ?? 0.5;
  const globalPick = cumulative(catalog.items.map(popularity));
  const categoryPick = new Map(
    [...byCategory].map(([name, items]) => [name, cumulative(items.map(popularity))]),
  );

  const users: SyntheticUser[] = [];
  const userPicks: number[][] = [];
  for (let u = 0; u < options.users; u++) {
    const favourites = random.sample(categories, random.int(1, Math.min(3, categories.length)));
    const raw = categories.map((name) =>
      favourites.includes(name) ? 1 + random.exponential(2) : 0.05,
    );
    const total = raw.reduce((sum, value) => sum + value, 0);
    const interests = Object.fromEntries(
      categories.map((name, i) => [name, (raw[i] ?? 0) / total]),
    );
    users.push({ userId: `${userPrefix}${String(u).padStart(width, '0')}`, interests });
    userPicks.push(cumulative(categories.map((name) => interests[name] ?? 0)));
  }
  // Some users are far more active than others (Zipf-like).
  const activity = cumulative(users.map((_, i) => 1 / (1 + i * 0.05)));

  const events: SyntheticEvent[] = [];
  let eventCount = 0;
  let requestCount = 0;
  const push = (
    type: SyntheticEventType,
    userId: string,
    itemId: string,
    ts: number,
    requestId: string,
    position: number,
  ) => {
    events.push({
      schemaVersion: 1,
      eventId: `${eventPrefix}${String(eventCount++)}`,
      type,
      userId,
      itemId,
      timestamp: new Date(Math.min(ts, to)).toISOString(),
      requestId,
      position,
    });
  };

  let impressions = 0;
  while (impressions < options.impressions) {
    const u = random.weighted(activity);
    const user = users[u];
    const requestId = `req-${String(options.seed)}-${String(requestCount++)}`;
    const ts = from + Math.floor(random.next() * (to - from));
    const slate = Math.min(slateSize, options.impressions - impressions);
    const shown = new Set<string>();
    for (let position = 0; position < slate; position++) {
      let item: SyntheticItem;
      if (random.chance(personalised)) {
        const category = categories[random.weighted(userPicks[u] ?? [])] ?? '';
        const pool = byCategory.get(category) ?? [];
        item =
          pool.length > 0
            ? pool[random.weighted(categoryPick.get(category) ?? [])]
            : catalog.items[random.weighted(globalPick)];
      } else {
        item = catalog.items[random.weighted(globalPick)];
      }
      if (shown.has(item.itemId)) continue;
      shown.add(item.itemId);
      push('impression', user.userId, item.itemId, ts, requestId, position);
      impressions++;
      const affinity = user.interests[item.category] ?? 0;
      const clickP = (0.01 + 0.45 * affinity * popularity(item)) / (1 + 0.15 * position);
      if (!random.chance(clickP)) continue;
      const clickTs = ts + Math.floor(random.exponential(CLICK_DELAY_MEAN_MS));
      push('click', user.userId, item.itemId, clickTs, requestId, position);
      if (!random.chance(0.2 + 0.3 * affinity)) continue;
      const cartTs = clickTs + Math.floor(random.exponential(CART_DELAY_MEAN_MS));
      push('add_to_cart', user.userId, item.itemId, cartTs, requestId, position);
      if (!random.chance(0.35)) continue;
      const buyTs = cartTs + Math.floor(random.exponential(PURCHASE_DELAY_MEAN_MS));
      push('purchase', user.userId, item.itemId, buyTs, requestId, position);
    }
  }
  events.sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
  return { users, events };
}
