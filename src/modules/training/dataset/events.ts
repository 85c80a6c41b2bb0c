import { HistoryClick, Impression, SERVED_FEATURE_INPUTS, ServedInputs } from './dataset';

/** An events row as training reads it (impressions and clicks). */
export interface EventRow {
  readonly seq: string;
  readonly type: 'impression' | 'click';
  readonly userId: string;
  readonly itemId: string;
  readonly ts: number;
  readonly requestId: string | null;
}

/** A user's click, for histories. */
export interface ClickRow {
  readonly userId: string;
  readonly itemId: string;
  readonly ts: number;
}

/** A served-slate log row as training reads it (served-log module, `served_slates`). */
export interface ServedSlateRow {
  readonly requestId: string;
  readonly userId: string;
  readonly servedAt: number;
  readonly features: readonly string[];
  /** Served order. */
  readonly itemIds: readonly string[];
  /** Row-major: item p's values at [p * features.length, (p + 1) * features.length). */
  readonly values: readonly number[];
}

const MAX_HISTORY = 50;

/** The slate's items with their positions and the inputs the combiner reads, by item id. */
function servedInputsOf(slate: ServedSlateRow): Map<string, ServedInputs> {
  const width = slate.features.length;
  const columns = SERVED_FEATURE_INPUTS.map((name) => slate.features.indexOf(name));
  return new Map(
    slate.itemIds.map((itemId, p) => [
      itemId,
      {
        position: p + 1,
        inputs: columns.map((column) =>
          column < 0 ? Number.NaN : slate.values[p * width + column],
        ),
      },
    ]),
  );
}

/**
 * Turns stored events into impressions: impression events grouped by request id, labelled by the
 * clicks carrying the same request id. Where a producer sends no impression events, the served
 * slate the click's request id names stands in: its first `shownDepth` items (and the clicked
 * one, wherever it was) count as shown, because a storefront renders the top of a slate and
 * only the log knows what that was. Either way, the slate's logged inputs and positions travel
 * with the impression for the combiner. A click matching neither becomes a one-item impression
 * with no shown negatives, so the trainer samples negatives for it. History: the user's clicks
 * strictly before the impression, newest first, from `userClicks` (which may reach further back
 * than `events`).
 */
export function impressionsFromEvents(
  events: readonly EventRow[],
  userClicks: readonly ClickRow[],
  servedSlates: readonly ServedSlateRow[] = [],
  shownDepth = 10,
): Impression[] {
  interface Slate {
    id: string;
    userId: string;
    time: number;
    shown: string[];
    clicked: Set<string>;
    served?: Map<string, ServedInputs>;
  }
  const slates = new Map<string, Slate>();
  const slateKey = (userId: string, requestId: string) => `${userId}\u0000${requestId}`;
  for (const event of events) {
    if (event.type !== 'impression' || event.requestId === null) continue;
    const key = slateKey(event.userId, event.requestId);
    let slate = slates.get(key);
    if (slate === undefined) {
      slate = {
        id: event.requestId,
        userId: event.userId,
        time: event.ts,
        shown: [],
        clicked: new Set(),
      };
      slates.set(key, slate);
    }
    slate.time = Math.min(slate.time, event.ts);
    if (!slate.shown.includes(event.itemId)) slate.shown.push(event.itemId);
  }
  for (const logged of servedSlates) {
    const key = slateKey(logged.userId, logged.requestId);
    const served = servedInputsOf(logged);
    const slate = slates.get(key);
    if (slate !== undefined) {
      slate.served = served;
      continue;
    }
    slates.set(key, {
      id: logged.requestId,
      userId: logged.userId,
      time: logged.servedAt,
      shown: logged.itemIds.slice(0, shownDepth),
      clicked: new Set(),
      served,
    });
  }
  const orphans: Slate[] = [];
  for (const event of events) {
    if (event.type !== 'click') continue;
    const slate =
      event.requestId === null ? undefined : slates.get(slateKey(event.userId, event.requestId));
    // A click below the shown depth of a logged slate was seen all the same.
    if (slate?.served?.has(event.itemId) === true && !slate.shown.includes(event.itemId)) {
      slate.shown.push(event.itemId);
    }
    if (slate?.shown.includes(event.itemId) === true) slate.clicked.add(event.itemId);
    else {
      orphans.push({
        id: `click:${event.seq}`,
        userId: event.userId,
        time: event.ts,
        shown: [event.itemId],
        clicked: new Set([event.itemId]),
      });
    }
  }
  const byUser = new Map<string, ClickRow[]>();
  for (const click of userClicks) {
    const list = byUser.get(click.userId) ?? [];
    list.push(click);
    byUser.set(click.userId, list);
  }
  for (const list of byUser.values()) list.sort((a, b) => a.ts - b.ts);
  const historyAt = (userId: string, time: number): HistoryClick[] => {
    const list = byUser.get(userId) ?? [];
    // Binary search: clicks strictly before `time`.
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].ts < time) lo = mid + 1;
      else hi = mid;
    }
    const out: HistoryClick[] = [];
    for (let i = lo - 1; i >= 0 && out.length < MAX_HISTORY; i--) {
      out.push({ itemId: list[i].itemId, time: list[i].ts });
    }
    return out;
  };
  return [...slates.values(), ...orphans]
    .filter((slate) => slate.clicked.size > 0)
    .map((slate) => ({
      id: slate.id,
      userId: slate.userId,
      time: slate.time,
      history: historyAt(slate.userId, slate.time),
      clicked: [...slate.clicked],
      notClicked: slate.shown.filter((id) => !slate.clicked.has(id)),
      ...(slate.served === undefined ? {} : { served: Object.fromEntries(slate.served) }),
    }))
    .sort((a, b) => a.time - b.time || (a.id < b.id ? -1 : 1));
}
