import { itemText, itemTextHash } from '../embedding/item-text';
import { ItemRow, latestItemWrites, toItemRow } from './ingest.batch';

function row(itemId: string, ts: string, title: string): ItemRow {
  return toItemRow({ schemaVersion: 1, itemId, title }, new Date(ts));
}

describe('latestItemWrites', () => {
  it('keeps the newest write per item whatever the arrival order', () => {
    const writes = latestItemWrites([
      row('a', '2025-01-03T00:00:00Z', 'newest'),
      row('b', '2025-01-01T00:00:00Z', 'only'),
      row('a', '2025-01-01T00:00:00Z', 'older'),
      row('a', '2025-01-02T00:00:00Z', 'middle'),
    ]);
    expect(writes.map((w) => [w.itemId, w.title])).toEqual([
      ['a', 'newest'],
      ['b', 'only'],
    ]);
  });

  it('lets the later message win a timestamp tie', () => {
    const writes = latestItemWrites([
      row('a', '2025-01-01T00:00:00Z', 'first'),
      row('a', '2025-01-01T00:00:00Z', 'second'),
    ]);
    expect(writes.map((w) => w.title)).toEqual(['second']);
  });

  it('prefers the producer updatedAt over the message timestamp', () => {
    const item = toItemRow(
      { schemaVersion: 1, itemId: 'a', title: 't', updatedAt: new Date('2024-06-01T00:00:00Z') },
      new Date('2025-01-01T00:00:00Z'),
    );
    expect(item.sourceTs.toISOString()).toBe('2024-06-01T00:00:00.000Z');
  });

  it('hashes the shared item text template', () => {
    const item = toItemRow(
      {
        schemaVersion: 1,
        itemId: 'a',
        title: 'Chef Knife',
        category: 'cooking',
        tags: ['kitchen'],
      },
      new Date(),
    );
    expect(itemText({ title: 'Chef Knife', category: 'cooking', tags: ['kitchen'] })).toBe(
      'Chef Knife. Category: cooking. Tags: kitchen.',
    );
    expect(item.textHash).toBe(itemTextHash('Chef Knife. Category: cooking. Tags: kitchen.'));
    expect(item.textHash).toMatch(/^[0-9a-f]{64}$/);
  });
});
