/**
 * A five-field cron expression (minute hour day-of-month month day-of-week), evaluated in UTC.
 * Supports `*`, lists, ranges, steps, month and weekday names, 7 as Sunday and the @hourly,
 * @daily, @weekly, @monthly and @yearly shortcuts. Like Vixie cron, when both day fields are
 * restricted a day matches if either does.
 */
export interface CronSchedule {
  readonly expression: string;
  /** The first matching minute strictly after `after`. */
  next(after: Date): Date;
}

interface FieldSpec {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly names?: readonly string[];
}

const FIELDS: readonly FieldSpec[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  },
  { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

const SHORTCUTS: Readonly<Record<string, string>> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *',
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
};

/** Searching further than this finds nothing a valid expression could still match (e.g. Feb 30). */
const SEARCH_YEARS = 8;

export class CronParseError extends Error {
  constructor(expression: string, reason: string) {
    super(`invalid cron expression "${expression}": ${reason}`);
    this.name = 'CronParseError';
  }
}

function parseValue(raw: string, spec: FieldSpec, expression: string): number {
  const named = spec.names?.indexOf(raw.toLowerCase()) ?? -1;
  const value = named >= 0 ? named + (spec.min === 1 ? 1 : 0) : Number(raw);
  if (!/^\d+$/.test(raw) && named < 0) {
    throw new CronParseError(expression, `${spec.name}: "${raw}" is not a number`);
  }
  if (value < spec.min || value > spec.max) {
    throw new CronParseError(
      expression,
      `${spec.name}: ${raw} is outside ${String(spec.min)}-${String(spec.max)}`,
    );
  }
  return value;
}

function parseField(raw: string, spec: FieldSpec, expression: string): Set<number> {
  const values = new Set<number>();
  for (const part of raw.split(',')) {
    const pieces = part.split('/');
    const range = pieces[0] ?? '';
    const stepRaw = pieces.at(1);
    const extra = pieces.at(2);
    if (extra !== undefined || range === '') {
      throw new CronParseError(expression, `${spec.name}: malformed "${part}"`);
    }
    let step = 1;
    if (stepRaw !== undefined) {
      step = Number(stepRaw);
      if (!/^\d+$/.test(stepRaw) || step < 1) {
        throw new CronParseError(expression, `${spec.name}: step "${stepRaw}" must be >= 1`);
      }
    }
    let low: number;
    let high: number;
    if (range === '*') {
      low = spec.min;
      high = spec.max;
    } else {
      const bounds = range.split('-');
      const upper = bounds.at(1);
      if (bounds.length > 2) {
        throw new CronParseError(expression, `${spec.name}: malformed range "${range}"`);
      }
      low = parseValue(bounds[0] ?? '', spec, expression);
      // `5/15` means from 5 to the end in steps of 15.
      high =
        upper !== undefined
          ? parseValue(upper, spec, expression)
          : stepRaw !== undefined
            ? spec.max
            : low;
      if (high < low) {
        throw new CronParseError(expression, `${spec.name}: range "${range}" is reversed`);
      }
    }
    for (let value = low; value <= high; value += step) values.add(value);
  }
  return values;
}

export function parseCron(input: string): CronSchedule {
  const expression = input.trim();
  const expanded = SHORTCUTS[expression.toLowerCase()] ?? expression;
  const parts = expanded.split(/\s+/);
  if (parts.length !== FIELDS.length) {
    throw new CronParseError(expression, `expected 5 fields, got ${String(parts.length)}`);
  }
  const [minutes, hours, days, months, weekdays] = FIELDS.map((spec, i) =>
    parseField(parts[i] ?? '', spec, expression),
  ) as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>];
  if (weekdays.has(7)) weekdays.add(0);
  const dayRestricted = parts[2] !== '*';
  const weekdayRestricted = parts[4] !== '*';

  const dayMatches = (date: Date): boolean => {
    const byDay = days.has(date.getUTCDate());
    const byWeekday = weekdays.has(date.getUTCDay());
    if (dayRestricted && weekdayRestricted) return byDay || byWeekday;
    return byDay && byWeekday;
  };

  return {
    expression,
    next(after: Date): Date {
      const t = new Date(after.getTime());
      t.setUTCSeconds(0, 0);
      t.setUTCMinutes(t.getUTCMinutes() + 1);
      const limit = after.getTime() + SEARCH_YEARS * 366 * 86_400_000;
      while (t.getTime() <= limit) {
        if (!months.has(t.getUTCMonth() + 1)) {
          t.setUTCMonth(t.getUTCMonth() + 1, 1);
          t.setUTCHours(0, 0);
        } else if (!dayMatches(t)) {
          t.setUTCDate(t.getUTCDate() + 1);
          t.setUTCHours(0, 0);
        } else if (!hours.has(t.getUTCHours())) {
          t.setUTCHours(t.getUTCHours() + 1, 0);
        } else if (!minutes.has(t.getUTCMinutes())) {
          t.setUTCMinutes(t.getUTCMinutes() + 1);
        } else {
          return t;
        }
      }
      throw new CronParseError(expression, 'never matches');
    },
  };
}
