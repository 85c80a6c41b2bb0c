import pino from 'pino';
import { LoggerService } from '@nestjs/common';

export type Logger = pino.Logger;

export function createLogger(
  level: pino.LevelWithSilent,
  bindings: Record<string, unknown> = {},
): Logger {
  // Synchronous writes: the last lines before a signal-triggered exit must not be lost.
  return pino(
    { level, base: { service: 'recsys', ...bindings }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: 1, sync: true }),
  );
}

/** Routes Nest's own log lines into the same structured JSON stream. */
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
