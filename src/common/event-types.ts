/** What a user did with an item; the `user.events` topic's `type` and the `events.type` column. */
export const EVENT_TYPES = ['impression', 'click', 'add_to_cart', 'purchase'] as const;
export type EventType = (typeof EVENT_TYPES)[number];
