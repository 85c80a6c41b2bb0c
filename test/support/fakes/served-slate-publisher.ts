import { PackedMessages, unpackMessages } from '../../../src/infra/packed-messages';
import type { ServedSlatePublisher } from '../../../src/modules/served-log/served-log-kafka.repository';

/** One published message, as text. */
export interface KeyedMessage {
  readonly key: string;
  readonly value: string;
}

/**
 * An in-memory `rank.served`: keeps every published batch. `fail` makes sends reject; `hold`
 * keeps them pending until `release`, like a slow broker.
 */
export class FakeServedSlatePublisher implements ServedSlatePublisher {
  readonly batches: KeyedMessage[][] = [];
  fail = false;
  private held: (() => void)[] | undefined;

  get messages(): KeyedMessage[] {
    return this.batches.flat();
  }

  /** Parsed values of every published message, in order. */
  values(): Record<string, unknown>[] {
    return this.messages.map((message) => JSON.parse(message.value) as Record<string, unknown>);
  }

  hold(): void {
    this.held ??= [];
  }

  /** Lets every held send through and stops holding. */
  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const resume of held) resume();
  }

  async publish(slates: PackedMessages): Promise<void> {
    const messages = unpackMessages(slates.bytes).map(({ key, value }) => ({
      key: key.toString(),
      value: value.toString(),
    }));
    if (this.held !== undefined) {
      const held = this.held;
      await new Promise<void>((resolve) => held.push(resolve));
    }
    if (this.fail) throw new Error('broker unreachable');
    this.batches.push(messages);
  }
}
