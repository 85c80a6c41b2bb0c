import { splitByTime, withReplay } from './dataset';
import { ClickRow, EventRow, impressionsFromEvents, ServedSlateRow } from './events';

const event = (
  seq: number,
  type: 'impression' | 'click',
  itemId: string,
  ts: number,
  requestId: string | null,
  userId = 'u1',
): EventRow => ({ seq: String(seq), type, userId, itemId, ts, requestId });

describe('impressionsFromEvents', () => {
  const slate = (requestId: string, itemIds: string[], servedAt = 900): ServedSlateRow => ({
    requestId,
    userId: 'u1',
    servedAt,
    features: ['model', 'popularity', 'ctr', 'recency', 'price', 'boost'],
    itemIds,
    // Item p's values: model p, popularity 10 + p, ctr 20 + p, recency 30 + p, price 40 + p.
    values: itemIds.flatMap((_, p) => [p, 10 + p, 20 + p, 30 + p, 40 + p, 0]),
  });

  it('without impression events, the top of the served slate counts as shown', () => {
    const events = [event(1, 'click', 'c', 1500, 'r1'), event(2, 'click', 'f', 1600, 'r1')];
    const [impression] = impressionsFromEvents(
      events,
      [],
      [slate('r1', ['a', 'b', 'c', 'd', 'e', 'f'])],
      3,
    );
    // Depth 3: a, b, c shown; f was clicked below the depth, so it was seen too.
    expect(impression).toMatchObject({
      id: 'r1',
      time: 900,
      clicked: ['c', 'f'],
      notClicked: ['a', 'b'],
    });
    expect(impression.served?.c).toEqual({ position: 3, inputs: [12, 22, 32, 42] });
    expect(impression.served?.f).toEqual({ position: 6, inputs: [15, 25, 35, 45] });
  });

  it('explicit impression events win; the slate only adds positions and inputs', () => {
    const events = [
      event(1, 'impression', 'b', 1000, 'r1'),
      event(2, 'impression', 'x', 1000, 'r1'),
      event(3, 'click', 'b', 1500, 'r1'),
    ];
    const [impression] = impressionsFromEvents(events, [], [slate('r1', ['a', 'b'])], 10);
    expect(impression).toMatchObject({ clicked: ['b'], notClicked: ['x'] });
    expect(impression.served?.b.position).toBe(2);
  });

  it('groups impressions by request, labels them with that request’s clicks, keeps clicked slates', () => {
    const events = [
      event(1, 'impression', 'a', 1000, 'r1'),
      event(2, 'impression', 'b', 1000, 'r1'),
      event(3, 'impression', 'c', 1000, 'r1'),
      event(4, 'click', 'b', 1500, 'r1'),
      event(5, 'impression', 'd', 2000, 'r2'),
      event(6, 'impression', 'e', 2000, 'r2'),
    ];
    const clicks: ClickRow[] = [{ userId: 'u1', itemId: 'b', ts: 1500 }];
    const impressions = impressionsFromEvents(events, clicks);
    // r2 had no click: nothing to learn from.
    expect(impressions).toHaveLength(1);
    expect(impressions[0]).toMatchObject({
      id: 'r1',
      userId: 'u1',
      time: 1000,
      clicked: ['b'],
      notClicked: ['a', 'c'],
      history: [],
    });
  });

  it('turns clicks without impressions into one-item impressions (negatives sampled later)', () => {
    const events = [event(1, 'click', 'x', 5000, null), event(2, 'click', 'y', 6000, 'unknown')];
    const impressions = impressionsFromEvents(events, []);
    expect(impressions.map((i) => [i.id, i.clicked, i.notClicked])).toEqual([
      ['click:1', ['x'], []],
      ['click:2', ['y'], []],
    ]);
  });

  it('history: the user’s clicks strictly before the impression, newest first', () => {
    const clicks: ClickRow[] = [
      { userId: 'u1', itemId: 'old', ts: 100 },
      { userId: 'u1', itemId: 'newer', ts: 900 },
      { userId: 'u1', itemId: 'same-time', ts: 1000 },
      { userId: 'u2', itemId: 'other-user', ts: 500 },
    ];
    const events = [event(1, 'impression', 'a', 1000, 'r'), event(2, 'click', 'a', 1200, 'r')];
    const [impression] = impressionsFromEvents(events, clicks);
    expect(impression.history.map((h) => h.itemId)).toEqual(['newer', 'old']);
    expect(impression.history[0].time).toBe(900);
  });
});

describe('splits', () => {
  const imp = (id: string, time: number) => ({
    id,
    userId: 'u',
    time,
    history: [],
    clicked: ['a'],
    notClicked: [],
  });

  it('splitByTime holds out the latest impressions, never the earlier ones', () => {
    const all = [imp('c', 3), imp('a', 1), imp('e', 5), imp('b', 2), imp('d', 4)];
    const { train, validation } = splitByTime(all, 0.4);
    expect(train.map((i) => i.id)).toEqual(['a', 'b', 'c']);
    expect(validation.map((i) => i.id)).toEqual(['d', 'e']);
  });

  it('withReplay keeps every new impression and a seeded sample of old ones', () => {
    const fresh = [imp('n1', 10), imp('n2', 11)];
    const older = Array.from({ length: 20 }, (_, i) => imp(`o${i}`, i));
    const a = withReplay(fresh, older, 2, 7);
    const b = withReplay(fresh, older, 2, 7);
    expect(a).toHaveLength(6);
    expect(a.map((i) => i.id)).toEqual(b.map((i) => i.id));
    expect(a.filter((i) => i.id.startsWith('n'))).toHaveLength(2);
    expect(withReplay(fresh, older, 2, 8).map((i) => i.id)).not.toEqual(a.map((i) => i.id));
  });
});
