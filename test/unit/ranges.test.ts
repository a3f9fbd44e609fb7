import { planRanges } from '../../src/fetch-model/ranges';

describe('planRanges', () => {
  it('covers every byte exactly once, in order', () => {
    const ranges = planRanges(10, 4);
    expect(ranges).toEqual([
      { index: 0, start: 0, end: 3 },
      { index: 1, start: 4, end: 7 },
      { index: 2, start: 8, end: 9 },
    ]);
  });
  it('gives one range for a small object and none for an empty one', () => {
    expect(planRanges(3, 8)).toEqual([{ index: 0, start: 0, end: 2 }]);
    expect(planRanges(0, 8)).toEqual([]);
  });
  it('handles an exact multiple', () => {
    const ranges = planRanges(16, 8);
    expect(ranges).toHaveLength(2);
    expect(ranges[1]).toEqual({ index: 1, start: 8, end: 15 });
  });
  it('refuses nonsense sizes', () => {
    expect(() => planRanges(-1, 8)).toThrow(RangeError);
    expect(() => planRanges(8, 0)).toThrow(RangeError);
  });
});
