import {
  DocumentNode,
  FragmentDefinitionNode,
  GraphQLError,
  GraphQLSchema,
  Kind,
  SelectionSetNode,
} from 'graphql';
import type { MercuriusContext } from 'mercurius';
import { requestVariables } from './fast-path/variables';

export interface OperationLimits {
  /** Most fields one operation may select, fragments expanded at every use. */
  readonly maxComplexity: number;
  readonly maxAliases: number;
}

export interface RequestLimits extends OperationLimits {
  /** Longest query document in UTF-8 bytes. */
  readonly maxDocumentBytes: number;
  /** Most elements of any list in the request's variables. */
  readonly maxListLength: number;
}

interface Count {
  fields: number;
  aliases: number;
}

/**
 * Bounds the work one request can ask for: fields (fragments counted at every spread, so fragment
 * fan-out cannot hide cost) and aliases (which repeat expensive root fields such as `rank`). One
 * error per operation over a limit. A plain walk rather than a validation rule: graphql-js's
 * visitor would walk the whole document with type information first; this stops counting as soon
 * as a limit is passed.
 */
export function operationLimitErrors(
  document: DocumentNode,
  limits: OperationLimits,
): GraphQLError[] {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) {
      fragments.set(definition.name.value, definition);
    }
  }
  const exceeded = (count: Count) =>
    count.fields > limits.maxComplexity || count.aliases > limits.maxAliases;
  const visit = (set: SelectionSetNode, count: Count, path: readonly string[]): void => {
    for (const selection of set.selections) {
      if (exceeded(count)) return;
      switch (selection.kind) {
        case Kind.FIELD:
          count.fields++;
          if (selection.alias !== undefined) count.aliases++;
          if (selection.selectionSet) visit(selection.selectionSet, count, path);
          break;
        case Kind.INLINE_FRAGMENT:
          visit(selection.selectionSet, count, path);
          break;
        case Kind.FRAGMENT_SPREAD: {
          const name = selection.name.value;
          const fragment = fragments.get(name);
          // Unknown and cyclic fragments are reported by graphql's own rules.
          if (fragment !== undefined && !path.includes(name)) {
            visit(fragment.selectionSet, count, [...path, name]);
          }
          break;
        }
      }
    }
  };
  const errors: GraphQLError[] = [];
  for (const node of document.definitions) {
    if (node.kind !== Kind.OPERATION_DEFINITION) continue;
    const count: Count = { fields: 0, aliases: 0 };
    visit(node.selectionSet, count, []);
    if (count.fields > limits.maxComplexity) {
      errors.push(
        new GraphQLError(`Query complexity exceeds the limit of ${limits.maxComplexity} fields`, {
          nodes: node,
          extensions: { code: 'BAD_USER_INPUT', limit: 'complexity', max: limits.maxComplexity },
        }),
      );
    } else if (count.aliases > limits.maxAliases) {
      errors.push(
        new GraphQLError(`Query uses more than ${limits.maxAliases} aliases`, {
          nodes: node,
          extensions: { code: 'BAD_USER_INPUT', limit: 'aliases', max: limits.maxAliases },
        }),
      );
    }
  }
  return errors;
}

/**
 * A request refused before execution. Mercurius reports it like its own validation failures:
 * HTTP 400, one GraphQL error per entry of `errors` (see errors.ts).
 */
export class RequestRejected extends Error {
  readonly statusCode = 400;

  constructor(readonly errors: readonly GraphQLError[]) {
    super(errors.map((error) => error.message).join('; '));
    this.name = 'RequestRejected';
  }
}

function rejected(message: string, extensions: Record<string, unknown>): RequestRejected {
  return new RequestRejected([
    new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT', ...extensions } }),
  ]);
}

/**
 * A JSON value rather than a GraphQL document: Mercurius would parse it as a ready-made AST
 * (skipping the parser and letting malformed nodes reach the validator). No executable GraphQL
 * document starts like this.
 */
const JSON_VALUE_START = /^[\s\uFEFF]*(?:\{\s*"|\[|"|-|\d|(?:true|false|null)\s*$)/;

interface Walked {
  readonly value: unknown;
  /** Variable name, object key, or list index. */
  readonly key: string | number;
  readonly parent: Walked | undefined;
}

function pathOf(node: Walked): string {
  let path = '';
  for (let at: Walked | undefined = node; at !== undefined; at = at.parent) {
    if (at.parent === undefined) path = `${String(at.key)}${path}`;
    else path = typeof at.key === 'number' ? `[${at.key}]${path}` : `.${at.key}${path}`;
  }
  return path;
}

/**
 * The first list longer than `max` in the variables (iteratively: nesting may be deep). Its path
 * starts with the variable's name, which names the argument in the usual `rank(candidates:
 * $candidates)` style.
 */
export function overlongList(
  variables: unknown,
  max: number,
): { path: string; length: number } | undefined {
  if (typeof variables !== 'object' || variables === null) return undefined;
  // Only containers are walked: a node per leaf would be most of the garbage of a large request.
  const stack: Walked[] = [];
  const pushContainer = (value: unknown, key: string | number, parent: Walked | undefined) => {
    if (typeof value === 'object' && value !== null) stack.push({ value, key, parent });
  };
  for (const key of Object.keys(variables)) {
    pushContainer((variables as Record<string, unknown>)[key], key, undefined);
  }
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    const value = node.value as Record<string, unknown> | unknown[];
    if (Array.isArray(value)) {
      if (value.length > max) return { path: pathOf(node), length: value.length };
      for (let i = 0; i < value.length; i++) pushContainer(value[i], i, node);
    } else {
      for (const key of Object.keys(value)) pushContainer(value[key], key, node);
    }
  }
  return undefined;
}

/**
 * Mercurius hooks that refuse oversized requests before graphql-js spends work on them:
 * - preParsing (every request, cached documents too): document size, JSON in place of a
 *   document, and list lengths in the variables, which graphql-js would otherwise coerce
 *   element by element (250,000 tiny candidates in a 4 MB body cost over a second of CPU);
 * - preValidation: the operation limits, before graphql-js's own rules (whose overlapping-fields
 *   check is quadratic in repeated aliased fields).
 * Bounding the document also bounds the memory of Mercurius's parsed-document caches.
 */
export function requestLimitHooks(limits: RequestLimits) {
  return {
    preParsing: (_schema: GraphQLSchema, source: string, context: MercuriusContext) => {
      const bytes = Buffer.byteLength(source, 'utf8');
      if (bytes > limits.maxDocumentBytes) {
        throw rejected(
          `Query document is ${bytes} bytes; the limit is ${limits.maxDocumentBytes} (pass data in variables)`,
          { limit: 'documentBytes', max: limits.maxDocumentBytes },
        );
      }
      if (JSON_VALUE_START.test(source)) {
        throw rejected('query: must be a GraphQL document, not JSON', { field: 'query' });
      }
      const long = overlongList(requestVariables(context.reply.request), limits.maxListLength);
      if (long !== undefined) {
        throw rejected(
          `${long.path}: at most ${limits.maxListLength} list elements (got ${long.length})`,
          { field: long.path, limit: 'listLength', max: limits.maxListLength },
        );
      }
      return Promise.resolve();
    },
    preValidation: (_schema: GraphQLSchema, document: DocumentNode) => {
      const errors = operationLimitErrors(document, limits);
      return errors.length > 0 ? Promise.reject(new RequestRejected(errors)) : Promise.resolve();
    },
  };
}
