import { ValidationError } from '../../common/errors';
import {
  Arm,
  armOf,
  bucketOf,
  DEFAULT_DESIGN,
  NewExperiment,
  validateExperiment,
} from './experiment';

const arm = (overrides: Partial<Arm> = {}): Arm => ({
  name: 'control',
  modelVersion: null,
  profile: null,
  share: 50,
  ...overrides,
});

const experiment = (overrides: Partial<NewExperiment> = {}): NewExperiment => ({
  ...DEFAULT_DESIGN,
  name: 'new-model',
  kind: 'ab',
  salt: 'new-model',
  arms: [arm(), arm({ name: 'treatment', modelVersion: '7' })],
  ...overrides,
});

function fieldOf(work: () => unknown): string {
  try {
    work();
  } catch (error) {
    if (error instanceof ValidationError) return `${error.field}: ${error.reason}`;
    throw error;
  }
  throw new Error('expected a ValidationError');
}

describe('experiment assignment', () => {
  it('is sticky: the same salt and user give the same bucket, another salt another one', () => {
    expect(bucketOf('s1', 'user-42')).toBe(bucketOf('s1', 'user-42'));
    expect(bucketOf('s1', 'user-42')).not.toBe(bucketOf('s2', 'user-42'));
  });

  it('splits users by the shares (within 1.5 points over 20 000 users)', () => {
    const split = experiment({
      arms: [
        arm({ share: 20 }),
        arm({ name: 'b', modelVersion: '3', share: 30 }),
        arm({ name: 'c', profile: 'x', share: 50 }),
      ],
    });
    const counts = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      const { name } = armOf(split, `user-${i}`);
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    expect(Math.abs((counts.get('control') ?? 0) / 200 - 20)).toBeLessThan(1.5);
    expect(Math.abs((counts.get('b') ?? 0) / 200 - 30)).toBeLessThan(1.5);
    expect(Math.abs((counts.get('c') ?? 0) / 200 - 50)).toBeLessThan(1.5);
  });

  it('assigns independently of another experiment’s salt', () => {
    let same = 0;
    for (let i = 0; i < 10_000; i++) {
      const first = bucketOf('one', `u${i}`) < 0.5;
      const second = bucketOf('two', `u${i}`) < 0.5;
      if (first === second) same++;
    }
    expect(Math.abs(same / 10_000 - 0.5)).toBeLessThan(0.02);
  });
});

describe('experiment validation', () => {
  it('accepts a well-formed experiment', () => {
    expect(validateExperiment(experiment())).toEqual(experiment());
  });

  it.each([
    [{ name: 'has space' }, /^name: must be 1-64/],
    [{ salt: '' }, /^salt: must be 1-200 characters/],
    [{ arms: [arm({ share: 100 })] }, /^arms: must list 2-10 arms/],
    [{ arms: [arm(), arm()] }, /^arms\[1\]\.name: duplicate arm name/],
    [
      { arms: [arm(), arm({ name: 'b', modelVersion: 'v7' })] },
      /^arms\[1\]\.modelVersion: must be a positive integer/,
    ],
    [
      { arms: [arm(), arm({ name: 'b', modelVersion: '7', share: 40 })] },
      /^arms: shares must sum to 100 \(got 90\)/,
    ],
    [
      { arms: [arm(), arm({ name: 'b', modelVersion: '7', share: 0 })] },
      /^arms\[1\]\.share: must be a percent/,
    ],
    [
      { arms: [arm(), arm({ name: 'b' })] },
      /^arms: two arms serve the same version with the same profile/,
    ],
    [{ confidence: 1 }, /^confidence: must be between 0.5 and 1/],
    [{ minImpressions: 0 }, /^minImpressions: must be a positive integer/],
  ])('refuses %p naming the field', (overrides, expected) => {
    expect(fieldOf(() => validateExperiment(experiment(overrides)))).toMatch(expected);
  });
});
