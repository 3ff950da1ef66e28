export type { BtreeOps, BtreeProblem, Key, NodeStore } from './types.js';
export { Btree } from './btree.js';
export type { BulkLoader } from './bulk.js';
export type { CheckOptions } from './check.js';
export { MemStore, type MemStoreOptions } from './memstore.js';
export { compareKeys, formatKey, MAX_HEIGHT } from './node.js';
