/** How file data moves in bulk: the step size of large reads and writes, and the source of written bytes. */

/** Blocks handled per step of a large read or write: bounds memory, keeps I/O large. */
export const IO_CHUNK_BLOCKS = 2048;

/** Fills `n` bytes of `buf` at `bufOff` with the source's bytes from position `srcPos`. */
export type FillFn = (buf: Buffer, bufOff: number, srcPos: number, n: number) => void;
