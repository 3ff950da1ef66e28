/**
 * The emulated DAX machine (ARCHITECTURE.md, "Bird's-eye view" and "Invariants").
 *
 * Its whole state lives in the image and commits in the same copy-on-write
 * transaction as the filesystem, so one command can mmap, the next fault, and
 * a later verify check the result:
 *
 *   RootId.Proc    process tree, key (pid): the PGD block of each process
 *   RootId.Vma     VMA tree, key (pid, start): end, inode, file offset, prot, shared
 *   (per process)  four-level x86-64 page tables, one metadata block per table
 *                  (48-byte header + 512 seven-byte entries), COWed like btree nodes
 *   RootId.Desc    page descriptors of the page model (models.ts), per-block ones
 *                  as run records that stay inside 512-block chunks (chunks.ts)
 *   RootId.Dram    DRAM frames above the device: the zero page, page-cache
 *                  copies (pagecache model), anonymous copies of private mappings
 *   RootId.Pin     pins (pin_user_pages), key (pid, addr)
 *   RootId.Poison  poisoned blocks (memory failure)
 * Record layouts: src/format/dax-records.ts. Counters 12..15 of the superblock
 * count descriptor records, DRAM frames, page-table pages and leaf entries.
 *
 * Files: machine.ts (the Machine facade) over machine/ (state, entries, VMAs,
 * the fault handler and its wording, the block-holder hooks, pins,
 * reverse-map walks, views; ARCHITECTURE.md, "Code map"), memory-failure.ts
 * (poison), pagetable.ts (the tables), models.ts (what each page
 * model keeps), chunks.ts and table.ts (in-transaction caches of descriptor
 * records), trees.ts (btree ops tables), dax.ts (attachMachine and the Dax
 * API: one transaction per call), lab.ts (the rotation, demo and compare).
 *
 * Every image whose files may be mapped must be opened with attachMachine (the
 * CLI does it for every image it opens): the machine's hooks make plain file
 * operations refuse to move pinned blocks, tear down mappings of ranges that
 * move or go away, write-protect mappings of blocks that become shared, fail
 * reads of poisoned blocks and keep those out of free space.
 */
export { attachMachine, machineOf, machineMetadata, poisonedBlocks, Dax } from './dax.js';
export type {
  FaultRecord,
  FaultTrace,
  FaultBatchResult,
  FaultRun,
  FaultResultName,
  Mapper,
  MmapOptions,
  PageInfo,
  PtdumpEntry,
  MachineStats,
  DescriptorInfo,
  VmaInfo,
} from './machine.js';
export { Machine, hex, flagNames, faultRecords } from './machine.js';
export { buildRotation, mapRotation, runDemo, runCompare } from './lab.js';
export type { Rotation, DemoResult, CompareResult, ModelReport } from './lab.js';
