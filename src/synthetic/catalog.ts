import { cumulative, Random } from './prng';
import { CATEGORIES, CategoryVocabulary } from './vocabulary';

/** A catalog item in the `catalog.items` contract, plus the hidden quality that drives clicks. */
export interface SyntheticItem {
  readonly schemaVersion: 1;
  readonly itemId: string;
  readonly title: string;
  readonly description: string;
  readonly category: string;
  readonly tags: readonly string[];
  readonly price: number;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface SyntheticCatalog {
  readonly items: readonly SyntheticItem[];
  readonly categories: readonly string[];
  /** Latent appeal in (0, 1]; not part of the contract, used to draw clicks. */
  readonly quality: ReadonlyMap<string, number>;
}

export interface CatalogOptions {
  readonly items: number;
  readonly seed: number | string;
  /** How many categories to use (default all, at least 12). */
  readonly categories?: number;
  readonly idPrefix?: string;
  /** Items are created over the 180 days before this instant (default 2025-01-01). */
  readonly createdBefore?: Date;
}

const BRANDS = [
  'Northwind',
  'Aster',
  'Kestrel',
  'Lumen',
  'Orchard',
  'Vela',
  'Brightfield',
  'Tundra',
];
const DAY_MS = 86_400_000;

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function describe(
  random: Random,
  vocab: CategoryVocabulary,
  noun: string,
  adjective: string,
): string {
  const features = random.sample(vocab.features, 2);
  const uses = random.sample(vocab.uses, 2);
  const sentences = [
    `This ${adjective} ${noun} comes with ${features.at(0) ?? ''}.`,
    `It is a favourite for ${uses.at(0) ?? ''} and just as good for ${uses.at(1) ?? ''}.`,
  ];
  if (random.chance(0.7)) sentences.push(`Customers also love ${features.at(1) ?? ''}.`);
  if (random.chance(0.5)) {
    sentences.push(
      random.pick([
        'Backed by a two-year warranty.',
        'Ships in plastic-free packaging.',
        'Designed and tested by enthusiasts.',
        'Easy to clean and built to last.',
      ]),
    );
  }
  return sentences.join(' ');
}

/** A deterministic catalog: same options, same items, byte for byte. */
export function generateCatalog(options: CatalogOptions): SyntheticCatalog {
  const random = new Random(`catalog:${String(options.seed)}`);
  const vocabularies = CATEGORIES.slice(0, Math.max(1, options.categories ?? CATEGORIES.length));
  const prefix = options.idPrefix ?? 'item-';
  const createdBefore = (options.createdBefore ?? new Date('2025-01-01T00:00:00Z')).getTime();
  const width = Math.max(6, String(options.items).length);
  // Categories differ in size, like a real shop.
  const categoryWeights = cumulative(vocabularies.map(() => 0.5 + random.next()));
  const items: SyntheticItem[] = [];
  const quality = new Map<string, number>();
  for (let i = 0; i < options.items; i++) {
    const vocab = vocabularies[random.weighted(categoryWeights)];
    const noun = random.pick(vocab.nouns);
    const adjective = random.pick(vocab.adjectives);
    const brand = random.pick(BRANDS);
    const itemId = `${prefix}${String(i).padStart(width, '0')}`;
    const [low, high] = vocab.price;
    const price = Math.round((low + (high - low) * random.next() ** 2) * 100) / 100;
    const created = createdBefore - Math.floor(random.next() * 180 * DAY_MS);
    items.push({
      schemaVersion: 1,
      itemId,
      title: `${brand} ${capitalise(adjective)} ${capitalise(noun)}`,
      description: describe(random, vocab, noun, adjective),
      category: vocab.name,
      tags: random.sample(vocab.tags, random.int(2, 4)),
      price,
      createdAt: new Date(created).toISOString(),
      updatedAt: new Date(created).toISOString(),
    });
    quality.set(itemId, 0.2 + 0.8 * random.next() ** 2);
  }
  return { items, categories: vocabularies.map((vocab) => vocab.name), quality };
}
