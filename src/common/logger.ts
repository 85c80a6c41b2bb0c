import pino from 'pino';
import PinoPretty from 'pino-pretty';
import { LoggerService } from '@nestjs/common';
import type { LogFormat } from '../config/config';

export type Logger = pino.Logger;

/** `auto`: readable lines for a person at a terminal; JSON for everything else (log collectors). */
export function chooseLogFormat(format: LogFormat, isTTY: boolean | undefined): 'json' | 'pretty' {
  switch (format) {
    case 'auto':
      return isTTY === true ? 'pretty' : 'json';
    case 'json':
    case 'pretty':
      return format;
  }
}

/**
 * One line per record (an error's stack follows on its own lines), coloured when stdout supports
 * it. A stream in this thread rather than pino's worker transport: no extra thread, and synchronous
 * like the JSON destination.
 */
export function prettyStream(
  destination: number | NodeJS.WritableStream = 1,
  colorize = PinoPretty.isColorSupported,
): PinoPretty.PrettyStream {
  return PinoPretty({
    destination,
    colorize,
    sync: true,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service',
  });
}

export function createLogger(
  level: pino.LevelWithSilent,
  bindings: Record<string, unknown> = {},
  format: LogFormat = 'json',
): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'recsys', ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (chooseLogFormat(format, process.stdout.isTTY) === 'pretty') {
    return pino(options, prettyStream());
  }
  // Synchronous writes: the last lines before a signal-triggered exit must not be lost.
  return pino(options, pino.destination({ dest: 1, sync: true }));
}

/** Lets a warning through at most once per interval: failures come in bursts. */
export class WarningThrottle {
  private last = Number.NEGATIVE_INFINITY;

  constructor(private readonly intervalMs = 10_000) {}

  /** Whether to warn now; a yes starts the next interval. */
  allows(now = Date.now()): boolean {
    if (now - this.last < this.intervalMs) return false;
    this.last = now;
    return true;
  }
}

/** Routes Nest's own log lines into the same logger. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, context?: string): void {
    this.logger.info({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string): void {
    this.logger.error({ context, trace }, String(message));
  }
  warn(message: unknown, context?: string): void {
    this.logger.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string): void {
    this.logger.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string): void {
    this.logger.trace({ context }, String(message));
  }
}
