import { loadConfig } from '../config/config';
import { Metrics } from '../modules/metrics/metrics.registry';
import { mercuriusErrorFormatter } from './errors';
import { mercuriusOptions } from './graphql.module';
import { OperationGates } from './operation-gates';

function options(fastPath?: 'true' | 'false', authMode?: 'off' | 'api-key') {
  const config = loadConfig({ GRAPHQL_FAST_PATH: fastPath, AUTH_MODE: authMode });
  return mercuriusOptions(config, new Metrics({}), new OperationGates());
}

describe('mercuriusOptions', () => {
  it('runs the fast path by default: graphql-jit, deferred variables, property fields', () => {
    const on = options();
    expect(on.jit).toBe(1);
    expect(on.additionalRouteOptions?.preHandler).toBeInstanceOf(Function);
    expect(on.transformSchema).toBeInstanceOf(Function);
    expect(on.transformResolvers).toBeInstanceOf(Function);
    // Timing first, then the variables go back to the executor.
    expect(on.hooks?.preExecution).toHaveLength(2);
  });

  it('is plain Mercurius with GRAPHQL_FAST_PATH=false', () => {
    const off = options('false');
    expect(off.jit).toBe(0);
    expect(off.additionalRouteOptions).toBeUndefined();
    expect(off.transformSchema).toBeUndefined();
    expect(off.transformResolvers).toBeUndefined();
    expect(off.hooks?.preExecution).toBeInstanceOf(Function);
  });

  it('serves GraphiQL only without API keys (the local demo)', () => {
    expect(options(undefined, 'off').graphiql).toBe(true);
    expect(options(undefined, 'api-key').graphiql).toBe(false);
    expect(options().graphiql).toBe(false);
  });

  it.each(['true', 'false'] as const)(
    'keeps the request limits and the error formatter (GRAPHQL_FAST_PATH=%s)',
    (fastPath) => {
      const { hooks, errorFormatter, queryDepth } = options(fastPath);
      expect(hooks?.preParsing).toBeInstanceOf(Function);
      // The request limits, then the gates other modules add (introspection needs an ops key).
      expect(hooks?.preValidation).toHaveLength(2);
      expect(hooks?.onResolution).toBeInstanceOf(Function);
      expect(errorFormatter).toBe(mercuriusErrorFormatter);
      expect(queryDepth).toBe(12);
    },
  );
});
