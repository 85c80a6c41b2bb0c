import { isConnectionFailure, isDataRejection } from './errors';

function withCode(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('isConnectionFailure', () => {
  it.each([
    ['a refused connection', withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')],
    ['a reset socket', withCode('read ECONNRESET', 'ECONNRESET')],
    [
      'a server shutting down',
      withCode('terminating connection due to administrator command', '57P01'),
    ],
    ['a server starting up', withCode('the database system is starting up', '57P03')],
    ['SQLSTATE class 08', withCode('connection failure', '08006')],
    ['a dropped connection', new Error('Connection terminated unexpectedly')],
    ['a pool connect timeout', new Error('timeout exceeded when trying to connect')],
  ])('recognises %s', (_, error) => {
    expect(isConnectionFailure(error)).toBe(true);
  });

  it.each([
    ['a unique violation', withCode('duplicate key value', '23505')],
    ['a statement timeout', withCode('canceling statement due to statement timeout', '57014')],
    ['a plain bug', new TypeError("Cannot read properties of undefined (reading 'id')")],
    ['a non-error', 'ECONNREFUSED'],
  ])('does not take %s for one', (_, error) => {
    expect(isConnectionFailure(error)).toBe(false);
  });
});

describe('isDataRejection', () => {
  it.each([
    ['22P02', true],
    ['22008', true],
    ['23514', true],
    ['54000', true],
    ['08006', false],
    ['57P01', false],
    ['ECONNREFUSED', false],
  ])('classifies SQLSTATE %s', (code, expected) => {
    expect(isDataRejection(Object.assign(new Error('x'), { code }))).toBe(expected);
  });

  it('is false for errors without a string code (kafkajs uses numbers)', () => {
    expect(isDataRejection(Object.assign(new Error('x'), { code: 10 }))).toBe(false);
    expect(isDataRejection('22P02')).toBe(false);
  });
});
