import { createReadStream, existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { ItemTextSource } from '../../embedding/item-text';
import { Impression } from './dataset';

/** A news.tsv row as the service's item text template sees it. */
export interface MindItem extends ItemTextSource {
  readonly itemId: string;
}

/** A MIND folder: news.tsv, train/behaviors.tsv, dev/behaviors.tsv. */
export interface MindDataset {
  readonly items: readonly MindItem[];
  readonly train: readonly Impression[];
  readonly dev: readonly Impression[];
}

async function* lines(file: string): AsyncGenerator<string> {
  const reader = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of reader) if (line.trim().length > 0) yield line;
}

/** `MM/DD/YYYY hh:mm:ss AM|PM` (MIND's format), read as UTC. */
export function parseMindTime(text: string): number {
  const match = /^(\d{1,2})\/(\d{1,2})\/(\d{4}) (\d{1,2}):(\d{2}):(\d{2}) ([AP]M)$/.exec(
    text.trim(),
  );
  if (match === null) throw new Error(`bad MIND time "${text}"`);
  const [, month, day, year, hour, minute, second, half] = match;
  const h = (Number(hour) % 12) + (half === 'PM' ? 12 : 0);
  return Date.UTC(Number(year), Number(month) - 1, Number(day), h, Number(minute), Number(second));
}

export function formatMindTime(ms: number): string {
  const date = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  const h = date.getUTCHours();
  return (
    `${pad(date.getUTCMonth() + 1)}/${pad(date.getUTCDate())}/${date.getUTCFullYear()} ` +
    `${pad(h % 12 === 0 ? 12 : h % 12)}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} ` +
    (h < 12 ? 'AM' : 'PM')
  );
}

/** news.tsv: id, category, subcategory, title, abstract, url, title entities, abstract entities. */
export function parseNewsLine(line: string): MindItem {
  const [itemId, category, subcategory, title, abstract] = line.split('\t') as (
    string | undefined
  )[];
  if (!itemId || title === undefined) throw new Error(`bad news.tsv line: ${line.slice(0, 80)}`);
  // Subcategories become tags (MovieLens-derived files list every genre there, '|'-separated).
  const tags = (subcategory ?? '')
    .split('|')
    .map((tag) => tag.trim())
    .filter((tag) => tag.length > 0 && tag !== category);
  // Empty fields mean absent.
  const orNull = (text: string | undefined) => (text === undefined || text === '' ? null : text);
  return { itemId, title, category: orNull(category), tags, description: orNull(abstract) };
}

/** behaviors.tsv: impression id, user id, time, history (oldest first), candidates `id-label`. */
export function parseBehaviorLine(line: string): Impression {
  const [id, userId, time, history, candidates] = line.split('\t') as (string | undefined)[];
  if (!id || !userId || time === undefined) {
    throw new Error(`bad behaviors.tsv line: ${line.slice(0, 80)}`);
  }
  const clicked: string[] = [];
  const notClicked: string[] = [];
  for (const entry of (candidates ?? '').split(' ')) {
    if (entry.length === 0) continue;
    const dash = entry.lastIndexOf('-');
    const itemId = dash < 0 ? entry : entry.slice(0, dash);
    // Test files carry no labels; an unlabelled candidate counts as not clicked.
    if (dash >= 0 && entry.slice(dash + 1) === '1') clicked.push(itemId);
    else notClicked.push(itemId);
  }
  const ids = (history ?? '').split(' ').filter((itemId) => itemId.length > 0);
  return {
    id,
    userId,
    time: parseMindTime(time),
    history: ids.reverse().map((itemId) => ({ itemId, time: Number.NaN })),
    clicked,
    notClicked,
  };
}

export async function readBehaviors(file: string): Promise<Impression[]> {
  const out: Impression[] = [];
  for await (const line of lines(file)) out.push(parseBehaviorLine(line));
  return out;
}

export async function readMind(dir: string): Promise<MindDataset> {
  const files = {
    news: path.join(dir, 'news.tsv'),
    train: path.join(dir, 'train', 'behaviors.tsv'),
    dev: path.join(dir, 'dev', 'behaviors.tsv'),
  };
  for (const file of Object.values(files)) {
    if (!existsSync(file)) throw new Error(`${file} not found (expected a MIND-format folder)`);
  }
  const items: MindItem[] = [];
  for await (const line of lines(files.news)) items.push(parseNewsLine(line));
  return { items, train: await readBehaviors(files.train), dev: await readBehaviors(files.dev) };
}
