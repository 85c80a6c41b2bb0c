import {
  ASTVisitor,
  FragmentDefinitionNode,
  GraphQLError,
  Kind,
  SelectionSetNode,
  ValidationContext,
} from 'graphql';

export interface OperationLimits {
  /** Most fields one operation may select, fragments expanded at every use. */
  readonly maxComplexity: number;
  readonly maxAliases: number;
}

interface Count {
  fields: number;
  aliases: number;
}

/**
 * A validation rule bounding the work one request can ask for: fields (fragments counted at
 * every spread, so fragment fan-out cannot hide cost) and aliases (which repeat expensive root
 * fields such as `rank`). Counting stops as soon as a limit is passed.
 */
export function operationLimitsRule(limits: OperationLimits) {
  return (context: ValidationContext): ASTVisitor => {
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const definition of context.getDocument().definitions) {
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
    return {
      OperationDefinition(node) {
        const count: Count = { fields: 0, aliases: 0 };
        visit(node.selectionSet, count, []);
        if (count.fields > limits.maxComplexity) {
          context.reportError(
            new GraphQLError(
              `Query complexity exceeds the limit of ${limits.maxComplexity} fields`,
              {
                nodes: node,
                extensions: {
                  code: 'BAD_USER_INPUT',
                  limit: 'complexity',
                  max: limits.maxComplexity,
                },
              },
            ),
          );
        } else if (count.aliases > limits.maxAliases) {
          context.reportError(
            new GraphQLError(`Query uses more than ${limits.maxAliases} aliases`, {
              nodes: node,
              extensions: { code: 'BAD_USER_INPUT', limit: 'aliases', max: limits.maxAliases },
            }),
          );
        }
      },
    };
  };
}
