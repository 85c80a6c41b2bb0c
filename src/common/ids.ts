/** Ids of users, items and events: the same rule at every edge (Kafka, GraphQL). */
export const MAX_ID_LENGTH = 256;

// C0 controls and DEL: invisible in logs, and U+0000 cannot be stored in PostgreSQL text at all.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

export function hasControlCharacter(value: string): boolean {
  return CONTROL_CHARACTER.test(value);
}

/** Why `value` cannot be an id, or undefined when it can. */
export function idProblem(value: string): string | undefined {
  if (value.length === 0 || value.length > MAX_ID_LENGTH) {
    return `must be 1-${MAX_ID_LENGTH} characters`;
  }
  if (hasControlCharacter(value)) return 'must not contain control characters';
  return undefined;
}
