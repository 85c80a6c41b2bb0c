import type { OnModuleDestroy } from '@nestjs/common';
import type { Logger } from './logger';
import { waitAtMost } from './timeout';

/** The share of SHUTDOWN_TIMEOUT_MS that one step may wait on a dependency. */
const STEP_SHARE = 1 / 5;
/**
 * The share of SHUTDOWN_TIMEOUT_MS by which the last step ends: the rest is left for what closes
 * after it (the HTTP server) before the process's own timer exits with an error.
 */
const DEADLINE_SHARE = 0.9;

/**
 * One deadline for a whole shutdown. Each step that waits on a dependency (the Kafka consumers,
 * the embedding worker's batch, a model refresh, a training run, the Kafka clients, then Redis and
 * PostgreSQL) waits at most a step, and never past the deadline: with every dependency answering
 * nothing, steps that each took their own share ended past SHUTDOWN_TIMEOUT_MS, and the process
 * exited with an error instead of by itself. The deadline begins when Nest starts the shutdown
 * (`onModuleDestroy` runs before any step), or at the first step asked about.
 */
export class ShutdownDeadline implements OnModuleDestroy {
  private endsAt: number | undefined;

  constructor(
    private readonly shutdownTimeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  onModuleDestroy(): void {
    this.begin();
  }

  /** How long a step may wait now: at most `capMs` (a step by default), never past the deadline. */
  within(capMs = this.shutdownTimeoutMs * STEP_SHARE): number {
    const endsAt = this.begin();
    return Math.max(0, Math.min(Math.floor(capMs), endsAt - this.now()));
  }

  /**
   * Waits for `work` as one step (`within(capMs)` from now), then goes on without it, logging on
   * `logger` what it left.
   */
  wait(work: Promise<unknown>, what: string, logger?: Logger, capMs?: number): Promise<void> {
    return waitAtMost(work, this.within(capMs), what, logger);
  }

  private begin(): number {
    this.endsAt ??= this.now() + Math.floor(this.shutdownTimeoutMs * DEADLINE_SHARE);
    return this.endsAt;
  }
}

/**
 * A module's part of a shutdown, run once, from the first of its `onModuleDestroy` and
 * `beforeApplicationShutdown`. Nest runs every module's `onModuleDestroy` before it awaits any
 * `beforeApplicationShutdown`: begun there, the modules' waits on their dependencies overlap
 * instead of adding up, and each module still awaits its own before the clients close.
 */
export class ShutdownStep {
  private running: Promise<void> | undefined;

  constructor(private readonly run: () => Promise<void>) {}

  begin(): Promise<void> {
    if (this.running === undefined) {
      this.running = this.run();
      // A failure reaches whoever awaits the step, not the unhandled-rejection handler meanwhile.
      this.running.catch(() => undefined);
    }
    return this.running;
  }
}
