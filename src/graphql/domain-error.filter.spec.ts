import type { ArgumentsHost } from '@nestjs/common';
import { Logger } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { DomainError, ERROR_CODES, ErrorCode, ValidationError } from '../common/errors';
import { DomainErrorFilter } from './domain-error.filter';

const hostOf = (type: string) => ({ getType: () => type }) as unknown as ArgumentsHost;
const graphql = hostOf('graphql');

/** Every code but the service's own failures: what a client causes. */
const SERVICE_CODES: readonly ErrorCode[] = ['UNAVAILABLE', 'TIMEOUT', 'INTERNAL'];
const CLIENT_CODES = ERROR_CODES.filter((code) => !SERVICE_CODES.includes(code));

/** What `catch` threw (the filter hands GraphQL the error by throwing it); undefined if nothing. */
function thrownBy(filter: DomainErrorFilter, error: DomainError, host = graphql): unknown {
  try {
    filter.catch(error, host);
  } catch (thrown) {
    return thrown;
  }
  return undefined;
}

describe('DomainErrorFilter', () => {
  let warn: jest.SpyInstance;
  let error: jest.SpyInstance;

  beforeEach(() => {
    warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    error = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  });

  afterEach(() => jest.restoreAllMocks());

  it.each(CLIENT_CODES)(
    'passes a %s error on to the GraphQL formatter without a log line',
    (code) => {
      const refused = new DomainError(code, 'refused');
      expect(thrownBy(new DomainErrorFilter(), refused)).toBe(refused);
      expect(warn).not.toHaveBeenCalled();
      expect(error).not.toHaveBeenCalled();
    },
  );

  it('passes bad input on as the same ValidationError, field and reason kept', () => {
    const bad = new ValidationError('candidates[0].itemId', 'must be 1-256 characters');
    expect(thrownBy(new DomainErrorFilter(), bad)).toBe(bad);
    expect(error).not.toHaveBeenCalled();
  });

  it('logs an INTERNAL error with its stack, every time', () => {
    const filter = new DomainErrorFilter();
    const bug = new DomainError('INTERNAL', 'item a: the score is not a finite number');
    expect(thrownBy(filter, bug)).toBe(bug);
    expect(thrownBy(filter, bug)).toBe(bug);
    expect(error).toHaveBeenCalledTimes(2);
    expect(error).toHaveBeenCalledWith(bug.message, bug.stack);
  });

  it('warns of timeouts and outages at most once per code in a burst', () => {
    const filter = new DomainErrorFilter();
    const timeout = new DomainError('TIMEOUT', 'rank timed out after 2000 ms');
    const outage = new DomainError('UNAVAILABLE', 'no item vectors yet');
    for (let i = 0; i < 5; i++) {
      expect(thrownBy(filter, timeout)).toBe(timeout);
      expect(thrownBy(filter, outage)).toBe(outage);
    }
    expect(warn.mock.calls).toEqual([
      ['TIMEOUT: rank timed out after 2000 ms'],
      ['UNAVAILABLE: no item vectors yet'],
    ]);
  });

  it("leaves errors outside GraphQL to Nest's own handling", () => {
    const nest = jest
      .spyOn(BaseExceptionFilter.prototype, 'catch')
      .mockImplementation(() => undefined);
    const http = hostOf('http');
    const bad = new ValidationError('id', 'required');
    expect(thrownBy(new DomainErrorFilter(), bad, http)).toBeUndefined();
    expect(nest).toHaveBeenCalledWith(bad, http);
  });
});
