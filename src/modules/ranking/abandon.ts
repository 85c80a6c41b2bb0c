import { setMaxListeners } from 'node:events';

/**
 * What withdraws a request's queued work once nobody waits for its answer. The signal is made
 * only when work asks for one (most requests queue nothing); asked after the abort, it is aborted.
 */
export class Abandon {
  private controller: AbortController | undefined;
  private reason: { readonly error: unknown } | undefined;

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      // Every text queued for encoding listens for the abandon: many listeners, on purpose.
      setMaxListeners(0, this.controller.signal);
      if (this.reason !== undefined) this.controller.abort(this.reason.error);
    }
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.reason !== undefined;
  }

  abort(error: unknown): void {
    this.reason ??= { error };
    this.controller?.abort(error);
  }
}
