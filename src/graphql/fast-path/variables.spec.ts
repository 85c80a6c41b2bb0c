import type { FastifyRequest } from 'fastify';
import { buildSchema, parse } from 'graphql';
import type { MercuriusContext } from 'mercurius';
import { deferredVariables, requestVariables, variableErrors } from './variables';

const schema = buildSchema(`
  input Feature { name: String!, value: Float! }
  input Candidate { itemId: ID!, features: [Feature!] }
  type Query { rank(c: [Candidate!]!): Int! }
`);
const document = parse('query Rank($c: [Candidate!]!) { rank(c: $c) }');
const invalid = { c: [{ itemId: 'a', features: [{ name: 'x', value: 'high' }] }] };

function request(variables: unknown): FastifyRequest {
  return { body: { query: 'query Rank', operationName: 'Rank', variables } } as FastifyRequest;
}

/** What Mercurius does with the fast path on: the route's preHandler, later preExecution. */
async function deferAndExecute(req: FastifyRequest) {
  const deferred = deferredVariables();
  deferred.routePreHandler(req, undefined, () => undefined);
  const context = { reply: { request: req } } as MercuriusContext;
  return deferred.preExecution(schema, document, context);
}

describe('requestVariables and variableErrors with the variables deferred (fast path on)', () => {
  it('takes the variables out of the body and hands the same object back at execution', async () => {
    const req = request(invalid);
    const handedBack = await deferAndExecute(req);
    expect((req.body as { variables?: unknown }).variables).toBeUndefined();
    expect(handedBack).toEqual({ variables: invalid });
    expect(handedBack?.variables).toBe(invalid);
    expect(requestVariables(req)).toBe(invalid);
  });

  it("recomputes graphql-js's errors naming the path of an invalid value", async () => {
    const req = request(invalid);
    await deferAndExecute(req);
    expect(variableErrors(req)?.map((error) => error.message)).toEqual([
      'Variable "$c" got invalid value "high" at "c[0].features[0].value"; Float cannot represent non numeric value: "high"',
    ]);
  });

  it('finds no errors in valid variables, nor before execution', async () => {
    const early = request(invalid);
    deferredVariables().routePreHandler(early, undefined, () => undefined);
    expect(variableErrors(early)).toBeUndefined();
    const valid = request({ c: [{ itemId: 'a', features: [{ name: 'x', value: 1 }] }] });
    await deferAndExecute(valid);
    expect(variableErrors(valid)).toBeUndefined();
  });

  it('hands nothing back for a request without variables', async () => {
    const req = { body: { query: '{ rank }' } } as FastifyRequest;
    await expect(deferAndExecute(req)).resolves.toBeUndefined();
    expect(requestVariables(req)).toBeUndefined();
  });
});

describe('requestVariables and variableErrors with the variables left in the body (fast path off)', () => {
  it('reads the variables from the body and leaves errors to Mercurius', () => {
    const req = request(invalid);
    expect(requestVariables(req)).toBe(invalid);
    expect(variableErrors(req)).toBeUndefined();
  });
});
