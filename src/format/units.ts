/**
 * Units. Every quantity names its unit: a Blkno is a physical block number on
 * the image (= page frame number under DAX), a FileBlock is a block index inside
 * one file, a byte offset is a plain `number` named ...Bytes or offset.
 * All are JS numbers; on disk they are little-endian u64, and decode refuses any
 * value above Number.MAX_SAFE_INTEGER so that arithmetic stays exact.
 */
export type Blkno = number;
export type FileBlock = number;
export type Ino = number;

export const NULL_BLKNO: Blkno = 0;
export const PAGE_SIZE = 4096;
export const PMD_SIZE = 2 * 1024 * 1024;
