/**
 * Output in xfs_io's layouts, for scripts written against it: `fiemap -v`
 * (io/fiemap.c: print_verbose, print_hole, calc_print_format) and `fsmap -m`
 * (io/fsmap.c: dump_map_machine). Both count in 512-byte units (BTOBBT), as
 * xfs_io does.
 */
import type { FiemapExtent, FsmapRecord } from '../fs/types.js';

const BB = 512;
const bb = (bytes: number): number => Math.floor(bytes / BB);

/** struct fiemap_extent flags xfs_io prints. */
export const FIEMAP_EXTENT_LAST = 0x1;
export const FIEMAP_EXTENT_SHARED = 0x2000;
/** xfs_io sizes its columns from the first batch of extents it asks the kernel for. */
const EXTENT_BATCH = 32;

/** `xfs_io -c 'fiemap -v' FILE` for `path` of `size` bytes. */
export function fiemapVerbose(path: string, extents: FiemapExtent[], size: number): string {
  const flags = (e: FiemapExtent, i: number): number =>
    (e.shared ? FIEMAP_EXTENT_SHARED : 0) | (i === extents.length - 1 ? FIEMAP_EXTENT_LAST : 0);
  let foffW = 16;
  let boffW = 16;
  let totW = 5;
  let flgW = 5;
  extents.slice(0, EXTENT_BATCH).forEach((e, i) => {
    const l = bb(e.logical);
    const n = bb(e.length);
    const p = bb(e.physical);
    foffW = Math.max(foffW, `[${l}..${l + n - 1}]`.length);
    boffW = Math.max(boffW, `${p}..${p + n - 1}`.length);
    totW = Math.max(totW, String(n).length);
    flgW = Math.max(flgW, flags(e, i).toString(16).length);
  });
  const lines = [`${path}:`];
  const hole = (cur: number, from: number, to: number): string =>
    `${String(cur).padStart(4)}: ${`[${from}..${to - 1}]:`.padEnd(foffW)} ${'hole'.padEnd(boffW)} ${String(to - from).padStart(totW)}`;
  let cur = 0;
  let last = 0; // bytes: the end of the last extent handled
  extents.forEach((e, i) => {
    if (cur === 0)
      lines.push(
        `${'EXT'.padStart(4)}: ${'FILE-OFFSET'.padEnd(foffW)} ${'BLOCK-RANGE'.padEnd(boffW)} ${'TOTAL'.padStart(totW)} ${'FLAGS'.padStart(flgW)}`,
      );
    const l = bb(e.logical);
    const n = bb(e.length);
    const p = bb(e.physical);
    if (l > bb(last)) lines.push(hole(cur++, bb(last), l));
    lines.push(
      `${String(cur++).padStart(4)}: ${`[${l}..${l + n - 1}]:`.padEnd(foffW)} ${`${p}..${p + n - 1}`.padEnd(boffW)} ${String(n).padStart(totW)} ${`0x${flags(e, i).toString(16)}`.padStart(flgW)}`,
    );
    last = e.logical + e.length;
  });
  // The hole from the last extent to EOF.
  if (cur && last < size) lines.push(hole(cur, bb(last), bb(size)));
  return `${lines.join('\n')}\n`;
}

/**
 * Special owners as GETFSMAP codes (FMR_OWNER(type, code), printed
 * `special_TYPE:CODE`): free space is FMR_OWN_FREE (0:1); structures with an
 * XFS counterpart take XFS's code (type 'X' = 88); daxtool's own take type
 * 'D' = 68.
 */
export const SPECIAL_OWNERS: Record<string, string> = {
  free: '0:1',
  superblock: '88:1', // XFS_FMR_OWN_FS: static fs metadata
  'physical-index': '88:3', // XFS_FMR_OWN_AG: XFS keeps its rmapbt and free-space btrees there
  'free-space': '88:3',
  'inode-tree': '88:4', // XFS_FMR_OWN_INOBT
  'refcount-tree': '88:6', // XFS_FMR_OWN_REFC
  poisoned: '88:8', // XFS_FMR_OWN_DEFECTIVE: bad blocks
  'directory-tree': '68:1',
  'extent-tree': '68:2',
  'process-tree': '68:3',
  'vma-tree': '68:4',
  'page-tables': '68:5',
  'page-descriptors': '68:6',
  'dram-pages': '68:7',
  pins: '68:8',
  'poison-list': '68:9',
};

/** `xfs_io -c 'fsmap -m'`: CSV, one header line. MAJOR and MINOR are 0: the image is the device. */
export function fsmapMachine(records: FsmapRecord[], blockSize: number): string {
  const per = blockSize / BB;
  const lines = ['EXT,MAJOR,MINOR,PSTART,PEND,OWNER,OSTART,OEND,LENGTH'];
  records.forEach((r, i) => {
    const start = r.block * per;
    const len = r.length * per;
    let owner: string;
    if (r.owner === 'file') owner = `inode_${r.ino}_data,${r.offset * per},${(r.offset + r.length) * per - 1},`;
    else {
      const key = r.owner === 'metadata' ? r.what : r.owner;
      owner = `special_${SPECIAL_OWNERS[key] ?? '0:2'},,,`; // 0:2 is FMR_OWN_UNKNOWN
    }
    lines.push(`${i},0,0,${start},${start + len - 1},${owner}${len}`);
  });
  return `${lines.join('\n')}\n`;
}
