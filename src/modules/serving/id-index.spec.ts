import { IdIndex } from './id-index';

describe('IdIndex', () => {
  it('finds every id at its row and nothing else, like a Map of the list', () => {
    const ids = Array.from(
      { length: 5000 },
      (_, i) => `item-${i.toString(36)}-${(i * 7919) % 1000}`,
    );
    const index = new IdIndex(ids);
    const map = new Map(ids.map((id, row) => [id, row]));
    for (const id of ids) expect(index.get(id)).toBe(map.get(id));
    for (const absent of ['', 'item-', 'item-zz-1', 'ITEM-0-0', `${ids[0]} `, 'é', '\u{1F600}']) {
      expect(index.get(absent)).toBeUndefined();
    }
  });

  it('finds a list of ids at once as one by one, absent ones -1, through colliding slots', () => {
    // 64 ids in 128 slots: many share a first slot and probe on.
    const ids = Array.from({ length: 64 }, (_, i) => `c-${i}`);
    const index = new IdIndex(ids);
    const asked = [...ids.map((id) => [id].join('')), 'c-64', '', 'c-1 ', ...ids.slice(0, 5)];
    const rows = new Int32Array(asked.length);
    index.rowsOf(asked.length, (i) => asked[i], rows);
    expect(Array.from(rows)).toEqual(asked.map((id) => index.get(id) ?? -1));
    expect(Array.from(rows.subarray(0, 64))).toEqual(ids.map((_, row) => row));
    expect(Array.from(rows.subarray(64, 67))).toEqual([-1, -1, -1]);
  });

  it('keeps the last row of a repeated id; an empty list finds nothing', () => {
    expect(new IdIndex(['a', 'b', 'a']).get('a')).toBe(2);
    expect(new IdIndex(['a', 'b', 'a']).get('b')).toBe(1);
    expect(new IdIndex([]).get('a')).toBeUndefined();
  });

  it('confirms a matching hash with the id itself', () => {
    // Fresh (non-interned) strings with the same content must match; colliding slots probe on.
    const ids = Array.from({ length: 64 }, (_, i) => String(i));
    const index = new IdIndex(ids);
    expect(index.get(['1', '2'].join(''))).toBe(12);
    expect(index.get(String(64))).toBeUndefined();
  });
});

describe('IdIndex growing', () => {
  it('adds ids one at a time past every resize, each findable at its row', () => {
    const index = new IdIndex(['seed']);
    const added = Array.from({ length: 3000 }, (_, i) => `g-${i}`);
    for (const id of added) index.add(id);
    expect(index.size).toBe(3001);
    expect(index.get('seed')).toBe(0);
    added.forEach((id, i) => {
      expect(index.get(id)).toBe(i + 1);
      expect(index.id(i + 1)).toBe(id);
    });
    expect(index.get('g-3000')).toBeUndefined();
  });
});
