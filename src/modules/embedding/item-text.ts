import { createHash } from 'node:crypto';

/** The item fields the text encoder sees. */
export interface ItemTextSource {
  readonly title: string;
  readonly category?: string | null;
  readonly tags?: readonly string[] | null;
  readonly description?: string | null;
}

/**
 * The one text template shared by ingest (change detection) and embedding (encoder input):
 * `title. Category: category. Tags: a, b. description`, absent parts left out. Changing it changes
 * every hash, so every item is re-embedded once.
 */
export function itemText(item: ItemTextSource): string {
  const parts = [item.title.trim()];
  const category = item.category?.trim();
  if (category) parts.push(`Category: ${category}`);
  const tags = (item.tags ?? []).map((tag) => tag.trim()).filter((tag) => tag.length > 0);
  if (tags.length > 0) parts.push(`Tags: ${tags.join(', ')}`);
  const description = item.description?.trim();
  if (description) parts.push(description);
  return parts
    .filter((part) => part.length > 0)
    .map((part) => (/[.!?]$/.test(part) ? part : `${part}.`))
    .join(' ');
}

/** sha256 hex of the template's output; stored in `items.text_hash`. */
export function itemTextHash(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
