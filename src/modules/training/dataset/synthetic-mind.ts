import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateBehaviour, generateCatalog } from '../../../synthetic';
import { formatMindTime } from './mind';

export interface SyntheticMindOptions {
  readonly items: number;
  readonly users: number;
  /** Impression events (slots shown), as generateBehaviour counts them. */
  readonly impressions: number;
  readonly seed: number | string;
  /** Share of the time range, at the end, that goes to dev. */
  readonly devFraction?: number;
}

const clean = (text: string) => text.replace(/[\t\n\r]+/g, ' ');

/**
 * Writes the project's synthetic catalog and behaviour as a MIND folder (news.tsv,
 * train/behaviors.tsv, dev/behaviors.tsv): one behaviour line per slate with a click, history =
 * the user's earlier clicks (oldest first, at most 50), split by time.
 */
export function writeSyntheticMind(dir: string, options: SyntheticMindOptions): void {
  const catalog = generateCatalog({ items: options.items, seed: options.seed });
  const { events } = generateBehaviour({
    catalog,
    users: options.users,
    impressions: options.impressions,
    seed: options.seed,
  });
  const news = catalog.items.map((item) =>
    [item.itemId, item.category, item.tags.join('|'), item.title, item.description, '', '[]', '[]']
      .map(clean)
      .join('\t'),
  );
  interface Slate {
    userId: string;
    time: number;
    shown: string[];
    clicked: Set<string>;
  }
  const slates = new Map<string, Slate>();
  const clicks = new Map<string, { itemId: string; time: number }[]>();
  for (const event of events) {
    const time = Date.parse(event.timestamp);
    if (event.type === 'impression') {
      let slate = slates.get(event.requestId);
      if (slate === undefined) {
        slate = { userId: event.userId, time, shown: [], clicked: new Set() };
        slates.set(event.requestId, slate);
      }
      slate.shown.push(event.itemId);
    } else if (event.type === 'click') {
      slates.get(event.requestId)?.clicked.add(event.itemId);
      const list = clicks.get(event.userId) ?? [];
      list.push({ itemId: event.itemId, time });
      clicks.set(event.userId, list);
    }
  }
  const ordered = [...slates.values()]
    .filter((slate) => slate.clicked.size > 0 && slate.clicked.size < slate.shown.length)
    .sort((a, b) => a.time - b.time);
  const first = ordered[0]?.time ?? 0;
  const last = ordered.at(-1)?.time ?? 0;
  const cutoff = last - (last - first) * (options.devFraction ?? 0.2);
  const train: string[] = [];
  const dev: string[] = [];
  ordered.forEach((slate, i) => {
    const history = (clicks.get(slate.userId) ?? [])
      .filter((click) => click.time < slate.time)
      .slice(-50)
      .map((click) => click.itemId);
    const candidates = slate.shown.map((id) => `${id}-${slate.clicked.has(id) ? 1 : 0}`);
    const line = [
      String(i + 1),
      slate.userId,
      formatMindTime(slate.time),
      history.join(' '),
      candidates.join(' '),
    ].join('\t');
    (slate.time < cutoff ? train : dev).push(line);
  });
  mkdirSync(path.join(dir, 'train'), { recursive: true });
  mkdirSync(path.join(dir, 'dev'), { recursive: true });
  writeFileSync(path.join(dir, 'news.tsv'), `${news.join('\n')}\n`);
  writeFileSync(path.join(dir, 'train', 'behaviors.tsv'), `${train.join('\n')}\n`);
  writeFileSync(path.join(dir, 'dev', 'behaviors.tsv'), `${dev.join('\n')}\n`);
}
