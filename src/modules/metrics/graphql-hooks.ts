import { DocumentNode, Kind, OperationDefinitionNode } from 'graphql';
import type { MercuriusContext } from 'mercurius';
import { Metrics } from './metrics.registry';

interface TimedContext extends MercuriusContext {
  metricsStart?: number;
  metricsOperation?: string;
}

/** Operation name when the client gave one, else the first root field (`health`, `rank`). */
export function operationLabel(document: DocumentNode): string {
  const operation = document.definitions.find(
    (definition): definition is OperationDefinitionNode =>
      definition.kind === Kind.OPERATION_DEFINITION,
  );
  if (operation === undefined) return 'unknown';
  if (operation.name) return operation.name.value;
  const first = operation.selectionSet.selections.at(0);
  return first?.kind === Kind.FIELD ? first.name.value : 'anonymous';
}

/** Mercurius hooks that time each operation from execution start to resolution. */
export function graphqlMetricsHooks(metrics: Metrics) {
  return {
    preExecution: (_schema: unknown, document: DocumentNode, context: TimedContext) => {
      context.metricsStart = performance.now();
      context.metricsOperation = operationLabel(document);
      return Promise.resolve();
    },
    onResolution: (execution: { errors?: readonly unknown[] }, context: TimedContext) => {
      if (context.metricsStart !== undefined) {
        metrics.graphqlDuration.observe(
          {
            operation: context.metricsOperation ?? 'unknown',
            outcome: execution.errors?.length ? 'error' : 'ok',
          },
          (performance.now() - context.metricsStart) / 1000,
        );
      }
      return Promise.resolve();
    },
  };
}
