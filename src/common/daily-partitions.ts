export const DAY_MS = 86_400_000;

/** The UTC day (days since epoch) a time falls on. */
export function dayOf(time: Date): number {
  return Math.floor(time.getTime() / DAY_MS);
}

/** Names of a table's daily range partitions, `<table>_pYYYYMMDD`, one per UTC day. */
export interface DailyPartitionNames {
  /** The partition holding that UTC day. */
  readonly nameOf: (day: number) => string;
  /** The day a partition name holds; undefined for any other table name. */
  readonly dayOfName: (name: string) => number | undefined;
}

export function dailyPartitionNames(table: string): DailyPartitionNames {
  const pattern = new RegExp(`^${table}_p(\\d{4})(\\d{2})(\\d{2})$`);
  return {
    nameOf: (day) =>
      `${table}_p${new Date(day * DAY_MS).toISOString().slice(0, 10).replaceAll('-', '')}`,
    dayOfName: (name) => {
      const match = pattern.exec(name);
      if (match === null) return undefined;
      return dayOf(new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]))));
    },
  };
}
