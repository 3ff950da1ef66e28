/**
 * The shapes of what `daxtool report` gathers (report-data.ts) and draws
 * (src/cli/report/): the page's data, column by column, and its budgets. A
 * leaf, so that the gatherers (report-data.ts, report-machine.ts,
 * report-runs.ts) share them without importing one another in a circle.
 */
import type { Ino } from '../format/units.js';
import type { PageModel } from '../fs/types.js';

/** Block classes, by their index in the runs' `cls` column. */
export const BLOCK_CLASSES = ['free', 'metadata', 'data', 'poisoned', 'unaccounted'] as const;
export type BlockClass = (typeof BLOCK_CLASSES)[number];

/** What the page may hold; what passes a budget is counted and named in the page, not kept. */
export interface ReportLimits {
  /** Runs of the physical map; beyond, runs are bucketed (each bucket shows its most telling class). */
  runs: number;
  /** Physical-block index records embedded for owner look-ups. */
  owners: number;
  /** Page-table entry ranges embedded for mapper look-ups. */
  mappings: number;
  /** Files in the per-file table (the largest first). */
  files: number;
  /** Frames in the mapping graph. */
  graphFrames: number;
  /** Indices per file in the rotation matrix. */
  rotationIndices: number;
}

export const DEFAULT_LIMITS: ReportLimits = {
  runs: 100_000,
  owners: 50_000,
  mappings: 20_000,
  files: 200,
  graphFrames: 16,
  rotationIndices: 64,
};

/** Columns of equal length (JSON stays small: no key per record). */
export interface Runs {
  start: number[];
  len: number[];
  cls: number[];
  /** Refcount of data runs (1 for unshared), 0 otherwise. */
  rc: number[];
  /** Index into `whats` for metadata runs (which structure), -1 otherwise. */
  what: number[];
}

export interface OwnerColumns {
  pblk: number[];
  len: number[];
  /** Index into ReportData.files. */
  file: number[];
  fblk: number[];
  /** Records in the image (the columns hold the first `kept`, in block order). */
  total: number;
  /** Owners of blocks below this are all listed; past it, `fsmap` has them. */
  completeBelow: number;
}

export interface MappingColumns {
  pid: number[];
  addr: number[];
  pages: number[];
  /** Device block of the first page (for a DRAM copy: the block copied). */
  pfn: number[];
  file: number[];
  index: number[];
  writable: number[];
  /** 1: the entry maps a page-cache copy of the block, not the block. */
  copy: number[];
  /** 1 = pte, 2 = pmd. */
  level: number[];
  /** Leaf entries that map device blocks (or copies of them), and how many of those the ranges above hold. */
  total: number;
  kept: number;
}

export interface FileUsage {
  file: number;
  total: number;
  exclusive: number;
  shared: number;
}

export interface RotationData {
  paths: string[];
  /** Indices shown per file (the longest file's, up to the budget). */
  indices: number;
  /** Each file's size in blocks. */
  sizes: number[];
  /** cells[f][i]: the block at index i of file f, null for a hole or past EOF. */
  cells: (number | null)[][];
  /** Letters for the blocks, in order of first appearance (A = first file's index 0). */
  labels: Record<number, string>;
  /** Refcount of each labelled block. */
  refcounts: Record<number, number>;
}

export interface GraphEntry {
  pid: number;
  addr: number;
  vma: { start: number; end: number; offset: number; prot: string; shared: boolean };
  level: 'pte' | 'pmd';
  writable: boolean;
  /** The entry maps a page-cache copy of the frame. */
  copy: boolean;
  file: number;
  index: number;
  /** A write through this entry copies the block (refcount ≥ 2), invalidating every entry of the same (file, index). */
  cow: boolean;
  /** The page model's reverse-map walk of the frame found this entry. */
  found: boolean;
}

export interface GraphFrame {
  pfn: number;
  refcount: number;
  entries: GraphEntry[];
  /** The (file, index) mappers the model's reverse-map walk finds; ok: an entry above confirms it. */
  walk: { file: number; index: number; pid: number; addr: number; copy: boolean; ok: boolean }[];
  steps: number;
  /** Entries the walk did not find. */
  missed: number;
}

export interface GraphData {
  model: PageModel;
  how: string;
  frames: GraphFrame[];
  /** Mapped device frames in all (the graph shows the first ones, shared first). */
  mappedFrames: number;
}

export interface ReportData {
  image: string;
  label: string;
  uuid: string;
  model: PageModel;
  blockSize: number;
  totalBlocks: number;
  /** Exact block counts per class (before any bucketing of the runs). */
  counts: { free: number; metadata: number; data: number; shared: number; poisoned: number; unaccounted: number; maxRefcount: number };
  runs: Runs;
  whats: string[];
  /** 0, or the bucket size in blocks when the runs were too many and were bucketed. */
  bucket: number;
  /** Runs before bucketing. */
  runCount: number;
  files: { ino: Ino; path: string }[];
  owners: OwnerColumns;
  mappings: MappingColumns;
  usage: FileUsage[];
  /** Files with data in all (usage lists the largest ones). */
  fileCount: number;
  processes: { pid: number; vmas: { start: number; end: number; file: number; offset: number; prot: string; shared: boolean }[] }[];
  rotation: RotationData | null;
  graph: GraphData | null;
}
