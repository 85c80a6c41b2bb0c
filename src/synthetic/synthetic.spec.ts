import { generateBehaviour, generateCatalog } from '.';

describe('synthetic generator', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    const a = generateCatalog({ items: 200, seed: 7 });
    const b = generateCatalog({ items: 200, seed: 7 });
    const c = generateCatalog({ items: 200, seed: 8 });
    expect(JSON.stringify(a.items)).toBe(JSON.stringify(b.items));
    expect(JSON.stringify(a.items)).not.toBe(JSON.stringify(c.items));
    const x = generateBehaviour({ catalog: a, users: 50, impressions: 2000, seed: 7 });
    const y = generateBehaviour({ catalog: b, users: 50, impressions: 2000, seed: 7 });
    expect(JSON.stringify(x)).toBe(JSON.stringify(y));
  });

  it('writes multi-sentence items across at least 12 categories', () => {
    const catalog = generateCatalog({ items: 500, seed: 1 });
    expect(new Set(catalog.items.map((item) => item.category)).size).toBeGreaterThanOrEqual(12);
    for (const item of catalog.items.slice(0, 50)) {
      expect(item.description.split('. ').length).toBeGreaterThanOrEqual(2);
      expect(item.title.length).toBeGreaterThan(5);
    }
  });

  it('draws clicks from the users latent interests', () => {
    const catalog = generateCatalog({ items: 1000, seed: 3 });
    const { users, events } = generateBehaviour({
      catalog,
      users: 200,
      impressions: 40_000,
      seed: 3,
    });
    const category = new Map(catalog.items.map((item) => [item.itemId, item.category]));
    const interests = new Map(users.map((user) => [user.userId, user.interests]));
    const affinity = (type: string) => {
      const selected = events.filter((event) => event.type === type);
      const sum = selected.reduce(
        (total, e) => total + (interests.get(e.userId)?.[category.get(e.itemId) ?? ''] ?? 0),
        0,
      );
      return sum / selected.length;
    };
    expect(events.filter((e) => e.type === 'impression')).toHaveLength(40_000);
    expect(affinity('click')).toBeGreaterThan(affinity('impression') * 1.3);
    const sorted = events.map((e) => e.timestamp);
    expect(sorted).toEqual([...sorted].sort());
    expect(new Set(events.map((e) => e.eventId)).size).toBe(events.length);
  });
});
