/**
 * daxtool as a library: the filesystem, the emulated DAX machine and the
 * checker, without any CLI dependency (no commander, tables, spinners or
 * prompts are loaded). Every operation is synchronous except verify.
 *
 *   import { Filesystem, verify } from 'daxtool';
 *   Filesystem.mkfs('a.img', { sizeBytes: 64 << 20 });
 *   const fs = Filesystem.open('a.img', { write: true });
 *   fs.writePattern('/W', 0, 6 * 4096, 0x41);
 *   fs.reflink('/W', '/X', { srcOffset: 4096, dstOffset: 0, length: 5 * 4096 });
 *   fs.close();
 *   console.log(await verify('a.img', { repair: false }));
 */
export { DaxError, type ErrCode } from './format/errors.js';
export type { Blkno, FileBlock, Ino } from './format/units.js';
export { Filesystem } from './fs/filesystem.js';
export type { FsTx } from './fs/fstx.js';
export * from './fs/types.js';
export * as dax from './dax/index.js';
export { checkImage, registerChecker, verify, type Checker, type Problem, type VerifyResult } from './check/verify.js';
