import type { BtreeOps } from '../btree/types.js';
import { BlockType, readU64 } from '../format/block.js';
import * as D from '../format/dax-records.js';
import { RootId } from '../format/superblock.js';

/**
 * Ops tables of the DAX machine's trees, all driven by the one B+tree engine.
 * Record layouts and their invariants: src/format/dax-records.ts.
 */

export const procOps: BtreeOps<D.ProcRec> = {
  name: 'process',
  type: BlockType.ProcTree,
  recSize: D.PROC_REC_SIZE,
  keyFields: 1,
  key: (r) => [r.pid],
  keyField: (b, o) => readU64(b, o),
  encode: D.encodeProc,
  decode: D.decodeProc,
  checkRecord: D.checkProc,
};

export const vmaOps: BtreeOps<D.VmaRec> = {
  name: 'vma',
  type: BlockType.VmaTree,
  recSize: D.VMA_REC_SIZE,
  keyFields: 2,
  key: (r) => [r.pid, r.start],
  keyField: (b, o, f) => readU64(b, o + f * 8),
  encode: D.encodeVma,
  decode: D.decodeVma,
  checkRecord: D.checkVma,
};

export const descOps: BtreeOps<D.DescRec> = {
  name: 'page-descriptor',
  type: BlockType.PageDesc,
  recSize: D.DESC_REC_SIZE,
  keyFields: 4,
  key: (r) => [r.space, r.k1, r.k2, r.k3],
  keyField: D.descKeyField,
  encode: D.encodeDesc,
  decode: D.decodeDesc,
  checkRecord: D.checkDesc,
  checkRecordBytes: D.checkDescBytes,
};

export const dramOps: BtreeOps<D.DramRec> = {
  name: 'dram',
  type: BlockType.DramTree,
  recSize: D.DRAM_REC_SIZE,
  keyFields: 1,
  key: (r) => [r.frame],
  keyField: (b, o) => readU64(b, o),
  encode: D.encodeDram,
  decode: D.decodeDram,
  checkRecord: D.checkDram,
};

export const pinOps: BtreeOps<D.PinRec> = {
  name: 'pin',
  type: BlockType.PinTree,
  recSize: D.PIN_REC_SIZE,
  keyFields: 2,
  key: (r) => [r.pid, r.addr],
  keyField: (b, o, f) => readU64(b, o + f * 8),
  encode: D.encodePin,
  decode: D.decodePin,
  checkRecord: D.checkPin,
};

export const poisonOps: BtreeOps<D.PoisonRec> = {
  name: 'poison',
  type: BlockType.PoisonTree,
  recSize: D.POISON_REC_SIZE,
  keyFields: 1,
  key: (r) => [r.block],
  keyField: (b, o) => readU64(b, o),
  encode: D.encodePoison,
  decode: D.decodePoison,
  checkRecord: D.checkPoison,
};

/** One of the machine's trees: its root slot, its ops, and its two names. */
export interface MachineTree {
  root: RootId;
  ops: BtreeOps<unknown>;
  /** The name fsmap and the metadata listing give its blocks (machineMetadata). */
  space: string;
  /** The name verify's messages give it. */
  what: string;
}

/** The machine's trees, in root order: the one table every layer lists them from. */
export const MACHINE_TREES: readonly MachineTree[] = [
  { root: RootId.Proc, ops: procOps as BtreeOps<unknown>, space: 'process-tree', what: 'process tree' },
  { root: RootId.Vma, ops: vmaOps as BtreeOps<unknown>, space: 'vma-tree', what: 'VMA tree' },
  { root: RootId.Desc, ops: descOps as BtreeOps<unknown>, space: 'page-descriptors', what: 'page-descriptor tree' },
  { root: RootId.Dram, ops: dramOps as BtreeOps<unknown>, space: 'dram-pages', what: 'DRAM tree' },
  { root: RootId.Pin, ops: pinOps as BtreeOps<unknown>, space: 'pins', what: 'pin tree' },
  { root: RootId.Poison, ops: poisonOps as BtreeOps<unknown>, space: 'poison-list', what: 'poison list' },
];
