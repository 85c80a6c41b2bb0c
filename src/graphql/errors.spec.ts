import { GraphQLError } from 'graphql';
import { formatGraphqlError } from './errors';

function withCode(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('formatGraphqlError for a backing service that is down', () => {
  it('answers UNAVAILABLE without the driver message', () => {
    const original = withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED');
    const formatted = formatGraphqlError(
      new GraphQLError(original.message, { originalError: original }),
    );
    expect(formatted).toMatchObject({
      message: 'A backing service is unavailable; retry shortly',
      extensions: { code: 'UNAVAILABLE' },
    });
  });
});
