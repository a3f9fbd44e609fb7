/** A byte range of an object, both ends inclusive as in HTTP Range headers. */
export interface ByteRange {
  index: number;
  start: number;
  end: number;
}

/** Splits `size` bytes into consecutive ranges of `blockSize` bytes (the last may be shorter). */
export function planRanges(size: number, blockSize: number): ByteRange[] {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`invalid size ${size}`);
  if (!Number.isSafeInteger(blockSize) || blockSize <= 0) {
    throw new RangeError(`invalid block size ${blockSize}`);
  }
  const ranges: ByteRange[] = [];
  for (let start = 0, index = 0; start < size; start += blockSize, index++) {
    ranges.push({ index, start, end: Math.min(start + blockSize, size) - 1 });
  }
  return ranges;
}
