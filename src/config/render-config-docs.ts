import { z } from 'zod';
import { configSchema } from './config';
import { CONFIG_DOCS, CONFIG_GROUPS, ConfigGroup, ConfigVariable } from './config-docs';

/** What the schema itself says about one variable. */
export interface VariableSpec {
  /** Type and allowed values, e.g. `integer, 0 to 65535` or ``one of `a`, `b` ``. */
  readonly type: string;
  /** The default as it would be written in the environment; undefined when there is none. */
  readonly defaultValue: string | undefined;
}

/** `int(min)` without a maximum uses this bound; it is not worth printing. */
const NO_MAXIMUM = Number.MAX_SAFE_INTEGER;

function code(value: string): string {
  return `\`${value}\``;
}

function numberType(schema: z.ZodNumber): string {
  let min: { value: number; inclusive: boolean } | undefined;
  let max: { value: number; inclusive: boolean } | undefined;
  let integer = false;
  let step: number | undefined;
  for (const check of schema._def.checks) {
    switch (check.kind) {
      case 'int':
        integer = true;
        break;
      case 'min':
        min = { value: check.value, inclusive: check.inclusive };
        break;
      case 'max':
        if (check.value < NO_MAXIMUM) max = { value: check.value, inclusive: check.inclusive };
        break;
      case 'multipleOf':
        step = check.value;
        break;
      case 'finite':
        // Environment values are finite numbers anyway; nothing to add.
        break;
    }
  }
  const bounds: string[] = [];
  if (min && max && min.inclusive && max.inclusive) {
    bounds.push(`${String(min.value)} to ${String(max.value)}`);
  } else {
    if (min) bounds.push(`${min.inclusive ? 'at least' : 'above'} ${String(min.value)}`);
    if (max) bounds.push(`${max.inclusive ? 'at most' : 'below'} ${String(max.value)}`);
  }
  if (step !== undefined) bounds.push(`a multiple of ${String(step)}`);
  return [integer ? 'integer' : 'number', ...bounds].join(', ');
}

function stringType(schema: z.ZodString): string {
  if (schema.isURL) return 'URL';
  const { minLength, maxLength } = schema;
  const type = minLength !== null && minLength > 0 ? 'non-empty string' : 'string';
  return maxLength === null ? type : `${type}, at most ${String(maxLength)} characters`;
}

function defaultText(value: unknown): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    return String(value);
  }
  throw new Error(`config docs: default ${JSON.stringify(value)} is not a scalar`);
}

/**
 * Reads type, bounds and default out of a zod schema. Wrappers are unwrapped in any order:
 * refinements and transforms (ZodEffects) keep the input type, so what is described is what the
 * environment variable must contain.
 */
export function describeSchema(schema: unknown): VariableSpec {
  if (schema instanceof z.ZodDefault) {
    const value: unknown = schema._def.defaultValue();
    return { type: describeSchema(schema._def.innerType).type, defaultValue: defaultText(value) };
  }
  if (schema instanceof z.ZodOptional) return describeSchema(schema._def.innerType);
  if (schema instanceof z.ZodEffects) return describeSchema(schema._def.schema);
  if (schema instanceof z.ZodNumber) return { type: numberType(schema), defaultValue: undefined };
  if (schema instanceof z.ZodString) return { type: stringType(schema), defaultValue: undefined };
  if (schema instanceof z.ZodBoolean) return { type: 'boolean', defaultValue: undefined };
  if (schema instanceof z.ZodEnum) {
    const options: unknown = schema.options;
    if (!Array.isArray(options)) throw new Error('config docs: enum without options');
    const values = options.map((option: unknown) => code(String(option)));
    return { type: `one of ${values.join(', ')}`, defaultValue: undefined };
  }
  const kind = schema instanceof z.ZodType ? schema.constructor.name : typeof schema;
  throw new Error(`config docs: ${kind} is not rendered yet; extend describeSchema`);
}

/** Table cells: one line, pipes escaped. */
function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
}

/** Width in code points, as prettier measures text without wide (East Asian) characters. */
function width(text: string): number {
  return Array.from(text).length;
}

/** A table laid out the way prettier prints Markdown tables, so `prettier --check` accepts it. */
function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((title, column) =>
    Math.max(3, width(title), ...rows.map((row) => width(row[column]))),
  );
  const line = (cells: readonly string[]) =>
    `| ${cells.map((text, column) => text + ' '.repeat(widths[column] - width(text))).join(' | ')} |`;
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)];
}

function anchor(group: ConfigGroup): string {
  return group.toLowerCase().replace(/[^a-z0-9]+/g, '-');
}

/** docs/configuration.md: every variable of `configSchema`, grouped as `CONFIG_DOCS` says. */
export function renderConfigDocs(): string {
  const names = Object.keys(configSchema.shape) as ConfigVariable[];
  const lines = [
    '<!-- Generated by `npm run docs:config` from src/config/config.ts and src/config/config-docs.ts; do not edit by hand. -->',
    '',
    '# Configuration',
    '',
    'Every setting is an environment variable, read once at start and validated against the schema',
    'in `src/config/config.ts`. An empty variable counts as unset. A bad value stops the process',
    'with a message that names the variable; every bad variable is reported at once. The local',
    '`npm start` sets only `AUTH_MODE=off`; the Kubernetes manifests set theirs in',
    '`k8s/base/configmap.yaml` and the Secret.',
    '',
    'To add a variable: add it to `configSchema`, describe it in `src/config/config-docs.ts`, and',
    'run `npm run docs:config`.',
    '',
    CONFIG_GROUPS.filter((group) => names.some((name) => CONFIG_DOCS[name].group === group))
      .map((group) => `[${group}](#${anchor(group)})`)
      .join(' · '),
  ];
  for (const group of CONFIG_GROUPS) {
    const rows = names
      .filter((name) => CONFIG_DOCS[name].group === group)
      .map((name) => {
        const spec = describeSchema(configSchema.shape[name]);
        const fallback =
          spec.defaultValue === undefined
            ? 'unset'
            : spec.defaultValue === ''
              ? '(empty)'
              : code(spec.defaultValue);
        return [code(name), fallback, spec.type, CONFIG_DOCS[name].description].map(cell);
      });
    if (rows.length === 0) continue;
    lines.push('', `## ${group}`, '', ...table(['variable', 'default', 'values', 'meaning'], rows));
  }
  return `${lines.join('\n')}\n`;
}
