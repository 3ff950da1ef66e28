import { nowMs } from '../format/clock.js';
import { Btree } from '../btree/btree.js';
import { err, isDaxError } from '../format/errors.js';
import { type DirentRec, type ExtentRec, INODE_TYPE_DIR, INODE_TYPE_FILE, type InodeRec, nameHash, ROOT_INO } from '../format/records.js';
import { CounterId, RootId } from '../format/superblock.js';
import { type Blkno, type FileBlock, type Ino, PAGE_SIZE, PMD_SIZE } from '../format/units.js';
import { BlockMap } from './bmap.js';
import { withLayoutsBroken } from './after-abort.js';
import { NO_HOLDER, type BlockHolder } from './holder.js';
import { IO_CHUNK_BLOCKS, type FillFn } from './chunking.js';
import { CowFork } from './cowfork.js';
import { writeInPlace } from './overwrite.js';
import { XfsShadow } from './xfs-shadow.js';
import { checkNewName, joinPath, splitPath } from './path.js';
import { direntOps, inodeOpsFor, MAX_KEY } from './trees.js';
import type { Tx } from './tx.js';
import type { DirEntry, FileType } from './types.js';

export { IO_CHUNK_BLOCKS, type FillFn } from './chunking.js';

export interface Resolved {
  inode: InodeRec;
  path: string;
}

/**
 * The filesystem's operations inside one transaction: namespace (inode tree +
 * one directory-entry tree keyed by (parent, name hash, seq)) and file data
 * (through BlockMap). Upper layers (dax) run in the same transaction so the
 * machine's state commits together with the filesystem's.
 */
export class FsTx {
  readonly inodes: Btree<InodeRec>;
  readonly dirents: Btree<DirentRec>;
  readonly bmap: BlockMap;
  readonly bs: number;
  private cow_: CowFork | null = null;
  /** The `linux` model's copy of XFS's allocation group (xfs-shadow.ts); idle under other models. */
  readonly xfs: XfsShadow;
  /** Who holds this image's blocks (holder.ts): told before blocks move, go, are read or freed. */
  readonly holder: BlockHolder;

  /** `holder`: made for this transaction (the DAX machine of an attached image); none by default. */
  constructor(
    readonly tx: Tx,
    holder?: (fx: FsTx) => BlockHolder,
  ) {
    this.inodes = tx.openTree(inodeOpsFor(tx.version), RootId.Inode);
    this.dirents = tx.openTree(direntOps, RootId.Dir);
    this.holder = holder ? holder(this) : NO_HOLDER;
    this.bmap = new BlockMap(tx, this.holder);
    this.bs = tx.blockSize;
    this.xfs = new XfsShadow(this);
    if (this.xfs.active) this.bmap.observer = this.xfs;
  }

  /** The per-file copy-on-write forks and extent-size hints (cowfork.ts). */
  get cow(): CowFork {
    return (this.cow_ ??= new CowFork(this));
  }

  /** Write what is kept in memory back into the transaction (tree roots follow their trees: Tx.openTree). */
  sync(): void {
    this.holder.sync();
    this.xfs.sync();
  }

  // ------------------------------------------------------------ inodes
  iget(ino: Ino, what?: string): InodeRec {
    const r = this.inodes.lookupEq([ino]);
    if (!r) throw err('ENOENT', `inode ${ino} not found`, what ?? `inode ${ino}`);
    return r;
  }

  iput(inode: InodeRec): void {
    this.inodes.update(inode);
  }

  private newInode(type: number, parent: Ino): InodeRec {
    const ino = this.tx.counters[CounterId.NextIno]++;
    const now = nowMs();
    const r: InodeRec = {
      ino,
      type,
      nlink: type === INODE_TYPE_DIR ? 2 : 1,
      size: 0,
      nblocks: 0,
      extentRoot: 0,
      mtimeMs: now,
      ctimeMs: now,
      parent: type === INODE_TYPE_DIR ? parent : 0,
      flags: 0,
    };
    this.inodes.insert(r);
    this.tx.counters[CounterId.Inodes]++;
    this.tx.counters[type === INODE_TYPE_DIR ? CounterId.Dirs : CounterId.Files]++;
    return r;
  }

  // --------------------------------------------------------- directories
  lookupChild(dir: Ino, name: Buffer): DirentRec | undefined {
    const h = nameHash(name);
    for (const d of this.dirents.range([dir, h, 0], [dir, h, MAX_KEY])) if (d.name.equals(name)) return d;
    return undefined;
  }

  /** Add a directory entry (repair links orphans with it; callers keep link counts). */
  addEntry(dir: Ino, name: Buffer, child: Ino, type: number): void {
    const h = nameHash(name);
    let seq = 0;
    for (const d of this.dirents.range([dir, h, 0], [dir, h, MAX_KEY])) seq = d.seq + 1;
    this.dirents.insert({ parent: dir, hash: h, seq, child, type, name });
  }

  removeEntry(d: DirentRec): void {
    this.dirents.delete([d.parent, d.hash, d.seq]);
  }

  /** Entries of a directory, by name. */
  children(dir: Ino): DirentRec[] {
    const out = [...this.dirents.range([dir, 0, 0], [dir, MAX_KEY, MAX_KEY])];
    return out.sort((a, b) => Buffer.compare(a.name, b.name));
  }

  private hasChildren(dir: Ino): boolean {
    for (const _ of this.dirents.range([dir, 0, 0], [dir, MAX_KEY, MAX_KEY])) return true;
    return false;
  }

  /** Resolve a path to its inode; every component but the last must be a directory. */
  resolve(path: string): Resolved {
    const parts = splitPath(path);
    let inode = this.iget(ROOT_INO, '/');
    let cur = '';
    for (const name of parts) {
      const at = cur || '/';
      if (inode.type !== INODE_TYPE_DIR) throw err('ENOTDIR', 'not a directory', at);
      cur = `${cur}/${name.toString('utf8')}`;
      const d = this.lookupChild(inode.ino, name);
      if (!d) throw err('ENOENT', 'no such file or directory', cur);
      inode = this.iget(d.child, cur);
    }
    return { inode, path: cur || '/' };
  }

  /** The parent directory and final name of a path that is to be created or removed. */
  resolveParent(path: string): { dir: InodeRec; name: Buffer; path: string } {
    const parts = splitPath(path);
    if (parts.length === 0) throw err('EINVAL', "'/' has no parent entry", '/');
    const name = parts[parts.length - 1]!;
    const parentPath =
      '/' +
      parts
        .slice(0, -1)
        .map((b) => b.toString('utf8'))
        .join('/');
    const dir = this.resolve(parentPath).inode;
    const full = joinPath(parentPath, name.toString('utf8'));
    if (dir.type !== INODE_TYPE_DIR) throw err('ENOTDIR', 'not a directory', parentPath);
    return { dir, name, path: full };
  }

  mkdir(path: string, parents: boolean): void {
    if (parents) {
      const parts = splitPath(path);
      let dir = this.iget(ROOT_INO, '/');
      let cur = '';
      for (const name of parts) {
        cur = `${cur}/${name.toString('utf8')}`;
        const d = this.lookupChild(dir.ino, name);
        if (d) {
          dir = this.iget(d.child, cur);
          if (dir.type !== INODE_TYPE_DIR) throw err('ENOTDIR', 'not a directory', cur);
          continue;
        }
        dir = this.makeDir(dir, name, cur);
      }
      return;
    }
    if (splitPath(path).length === 0) throw err('EEXIST', 'file exists', '/');
    const { dir, name, path: full } = this.resolveParent(path);
    if (this.lookupChild(dir.ino, name)) throw err('EEXIST', 'file exists', full);
    this.makeDir(dir, name, full);
  }

  private makeDir(parent: InodeRec, name: Buffer, path: string): InodeRec {
    checkNewName(name, path);
    const d = this.newInode(INODE_TYPE_DIR, parent.ino);
    this.addEntry(parent.ino, name, d.ino, INODE_TYPE_DIR);
    parent.nlink++;
    parent.mtimeMs = nowMs();
    this.iput(parent);
    return d;
  }

  /** The regular file at `path`, created (empty) if missing when `create`. */
  openFile(path: string, create: boolean): Resolved {
    const { dir, name, path: full } = this.resolveParent(path);
    const d = this.lookupChild(dir.ino, name);
    if (d) {
      const inode = this.iget(d.child, full);
      if (inode.type === INODE_TYPE_DIR) throw err('EISDIR', 'is a directory', full);
      return { inode, path: full };
    }
    if (!create) throw err('ENOENT', 'no such file or directory', full);
    checkNewName(name, full);
    const inode = this.newInode(INODE_TYPE_FILE, dir.ino);
    this.addEntry(dir.ino, name, inode.ino, INODE_TYPE_FILE);
    dir.mtimeMs = nowMs();
    this.iput(dir);
    return { inode, path: full };
  }

  readdir(path: string): DirEntry[] {
    const { inode, path: p } = this.resolve(path);
    if (inode.type !== INODE_TYPE_DIR) {
      const name = p.split('/').pop() ?? p;
      return [{ name, type: 'file', size: inode.size, ino: inode.ino }];
    }
    return this.children(inode.ino).map((d) => {
      const c = this.iget(d.child, joinPath(p, d.name.toString('utf8')));
      return { name: d.name.toString('utf8'), type: typeName(c.type), size: c.size, ino: c.ino };
    });
  }

  /** Remove a file, or a directory (empty, or with everything below it when recursive). */
  rm(path: string, recursive: boolean): void {
    const { dir, name, path: full } = this.resolveParent(path);
    const d = this.lookupChild(dir.ino, name);
    if (!d) throw err('ENOENT', 'no such file or directory', full);
    const inode = this.iget(d.child, full);
    if (inode.type === INODE_TYPE_DIR) {
      if (!recursive && this.hasChildren(inode.ino)) throw err('ENOTEMPTY', 'directory not empty', full, 'use rm -r');
      this.removeTree(inode, full);
      dir.nlink--;
    } else {
      this.releaseFile(inode, full);
    }
    this.removeEntry(d);
    dir.mtimeMs = nowMs();
    this.iput(dir);
  }

  private removeTree(dirInode: InodeRec, path: string): void {
    // Depth-first with an explicit stack: deep trees must not exhaust the JS stack.
    const stack: { inode: InodeRec; path: string }[] = [{ inode: dirInode, path }];
    const dirs: InodeRec[] = [];
    while (stack.length) {
      const { inode, path: p } = stack.pop()!;
      dirs.push(inode);
      for (const c of this.children(inode.ino)) {
        const cp = joinPath(p, c.name.toString('utf8'));
        const ci = this.iget(c.child, cp);
        this.removeEntry(c);
        if (ci.type === INODE_TYPE_DIR) stack.push({ inode: ci, path: cp });
        else this.releaseFile(ci, cp);
      }
    }
    for (const d of dirs) {
      this.inodes.delete([d.ino]);
      this.tx.counters[CounterId.Inodes]--;
      this.tx.counters[CounterId.Dirs]--;
    }
  }

  /**
   * write(2) overwrites unshared blocks in place, as XFS does (overwrite.ts),
   * instead of moving every written block: the `linux` page model's rule.
   */
  get overwriteInPlace(): boolean {
    return this.tx.ctx.sb.pageModel === 'linux';
  }

  private releaseFile(inode: InodeRec, path: string): void {
    this.holder.beforeRelease(inode, path, 0, MAX_KEY - 1);
    this.dropAll(inode);
    this.cow.forget(inode.ino);
    this.inodes.delete([inode.ino]);
    this.tx.counters[CounterId.Inodes]--;
    this.tx.counters[CounterId.Files]--;
  }

  /** Drop every extent of a file (one pass over its tree, then the tree's nodes). */
  dropAll(inode: InodeRec): void {
    this.bmap.releaseAll(inode);
  }

  rename(src: string, dst: string): void {
    const s = this.resolveParent(src);
    const sd = this.lookupChild(s.dir.ino, s.name);
    if (!sd) throw err('ENOENT', 'no such file or directory', s.path);
    const sInode = this.iget(sd.child, s.path);
    // `mv a /`: the root is a directory target like any other.
    let t =
      splitPath(dst).length === 0
        ? { dir: this.iget(ROOT_INO, '/'), name: s.name, path: joinPath('/', s.name.toString('utf8')) }
        : this.resolveParent(dst);
    let td = this.lookupChild(t.dir.ino, t.name);
    if (td && td.type === INODE_TYPE_DIR && td.child !== sInode.ino) {
      // `mv a dir` moves a into dir, as mv(1) does.
      const inner = this.iget(td.child, t.path);
      t = { dir: inner, name: s.name, path: joinPath(t.path, s.name.toString('utf8')) };
      td = this.lookupChild(inner.ino, s.name);
    }
    if (td && td.child === sInode.ino) throw err('EINVAL', 'source and destination are the same file', t.path);
    if (sInode.type === INODE_TYPE_DIR) {
      // A directory cannot move below itself.
      for (let a = t.dir; ; a = this.iget(a.parent)) {
        if (a.ino === sInode.ino) throw err('EINVAL', 'cannot move a directory into itself', t.path);
        if (a.ino === ROOT_INO) break;
      }
    }
    checkNewName(t.name, t.path);
    if (td) {
      const tInode = this.iget(td.child, t.path);
      if (tInode.type === INODE_TYPE_DIR) {
        if (sInode.type !== INODE_TYPE_DIR) throw err('EISDIR', 'is a directory', t.path);
        if (this.hasChildren(tInode.ino)) throw err('ENOTEMPTY', 'directory not empty', t.path);
        this.removeTree(tInode, t.path);
        t.dir.nlink--;
      } else {
        if (sInode.type === INODE_TYPE_DIR) throw err('ENOTDIR', 'not a directory', t.path);
        this.releaseFile(tInode, t.path);
      }
      this.removeEntry(td);
    }
    this.removeEntry(sd);
    const sameDir = s.dir.ino === t.dir.ino;
    const tdir = sameDir ? s.dir : t.dir;
    if (sInode.type === INODE_TYPE_DIR && !sameDir) {
      s.dir.nlink--;
      tdir.nlink++;
      sInode.parent = tdir.ino;
      this.iput(sInode);
    }
    this.addEntry(tdir.ino, t.name, sInode.ino, sInode.type);
    const now = nowMs();
    s.dir.mtimeMs = now;
    tdir.mtimeMs = now;
    // t.dir may be the inode record re-read for `mv a dir`; write whichever objects changed.
    this.iput(s.dir);
    if (!sameDir) this.iput(tdir);
  }

  // ------------------------------------------------------------- file data
  /** Read blocks [fblk, fblk+n) of a file into buf at bufOff (holes read as zeros). */
  readBlocks(inode: InodeRec, fblk: FileBlock, n: number, buf: Buffer, bufOff: number): void {
    const bs = this.bs;
    // Only holes are zero-filled; mapped blocks are read straight into place.
    let at = fblk;
    if (inode.extentRoot !== 0) {
      const tree = this.bmap.extentTree(inode);
      for (const e of this.bmap.extentsIn(tree, fblk, fblk + n)) {
        const s = Math.max(e.fblk, fblk);
        const t = Math.min(e.fblk + e.len, fblk + n);
        if (s > at) buf.fill(0, bufOff + (at - fblk) * bs, bufOff + (s - fblk) * bs);
        const pblk = e.pblk + (s - e.fblk);
        this.holder.checkReadable(pblk, t - s, inode, s);
        const o = bufOff + (s - fblk) * bs;
        this.tx.ctx.dev.readInto(pblk, buf.subarray(o, o + (t - s) * bs));
        at = t;
      }
    }
    if (at < fblk + n) buf.fill(0, bufOff + (at - fblk) * bs, bufOff + n * bs);
  }

  /** One chunk-sized buffer per transaction, reused by every step of a large write. */
  private chunk: Buffer | null = null;
  private chunkBuf(bytes: number): Buffer {
    if (!this.chunk || this.chunk.length < bytes) this.chunk = Buffer.allocUnsafe(Math.max(bytes, IO_CHUNK_BLOCKS * this.bs));
    return this.chunk.subarray(0, bytes);
  }

  read(inode: InodeRec, offset: number, length: number): Buffer {
    const end = Math.min(inode.size, offset + length);
    if (end <= offset) return Buffer.alloc(0);
    const b0 = Math.floor(offset / this.bs);
    const b1 = Math.ceil(end / this.bs);
    const buf = Buffer.allocUnsafe((b1 - b0) * this.bs);
    this.readBlocks(inode, b0, b1 - b0, buf, 0);
    return buf.subarray(offset - b0 * this.bs, end - b0 * this.bs);
  }

  /**
   * Write `length` bytes at `offset`, taken from `fill`. Every block written
   * goes to a newly allocated block (copy-on-write: the committed state and any
   * other file sharing the old block keep it), partial first and last blocks
   * merged with their old contents. The file grows to offset+length. Under the
   * `linux` model unshared blocks are overwritten in place instead (overwrite.ts).
   */
  write(inode: InodeRec, path: string, offset: number, length: number, fill: FillFn): void {
    if (length === 0) return;
    if (this.overwriteInPlace) return writeInPlace(this, inode, path, offset, length, fill);
    const bs = this.bs;
    const end = offset + length;
    const b0 = Math.floor(offset / bs);
    const b1 = Math.ceil(end / bs);
    this.holder.beforeRelease(inode, path, b0, b1 - b0, true);
    for (let c0 = b0; c0 < b1;) {
      const c1 = Math.min(b1, c0 + IO_CHUNK_BLOCKS);
      const n = c1 - c0;
      // Every byte is set below: partial end blocks are read whole, the rest comes from `fill`.
      const buf = this.chunkBuf(n * bs);
      const headPartial = c0 === b0 && offset % bs !== 0;
      const tailPartial = c1 === b1 && end % bs !== 0;
      if (headPartial) this.readBlocks(inode, c0, 1, buf, 0);
      if (tailPartial && !(headPartial && n === 1)) this.readBlocks(inode, c1 - 1, 1, buf, (n - 1) * bs);
      const s = Math.max(offset, c0 * bs);
      const t = Math.min(end, c1 * bs);
      fill(buf, s - c0 * bs, s - offset, t - s);
      this.replaceBlocks(inode, c0, n, buf);
      c0 = c1;
    }
    if (end > inode.size) inode.size = end;
    inode.mtimeMs = nowMs();
    this.iput(inode);
  }

  /** Give file blocks [fblk, fblk+n) new blocks holding `data` (n blocks of bytes). */
  replaceBlocks(inode: InodeRec, fblk: FileBlock, n: number, data: Buffer): void {
    const bs = this.bs;
    const hintExt = fblk > 0 ? this.bmap.lookup(this.bmap.extentTree(inode), fblk - 1) : undefined;
    let hint = hintExt ? hintExt.pblk + (fblk - hintExt.fblk) : 2;
    this.bmap.dropRange(inode, fblk, n);
    for (let done = 0; done < n;) {
      const [p, l] = this.allocFor(fblk + done, n - done, hint);
      this.tx.writeData(p, data.subarray(done * bs, (done + l) * bs));
      this.bmap.mapExtent(inode, fblk + done, p, l, true);
      done += l;
      hint = p + l;
    }
  }

  /**
   * Blocks for file blocks [fblk, fblk+want). Where the request covers whole
   * 2 MiB-aligned stretches of the file, a 2 MiB-aligned physical run is tried
   * first, so that the file can be mapped with huge (PMD) entries; otherwise,
   * or when no aligned run is free, a plain run near the hint.
   */
  private allocFor(fblk: FileBlock, want: number, hint: number): [number, number] {
    const huge = PMD_SIZE / this.bs;
    if (this.bs === PAGE_SIZE && fblk % huge === 0 && want >= huge && this.tx.freeBlocks >= want + huge) {
      try {
        return this.tx.alloc(want - (want % huge), hint, { align: huge });
      } catch (e) {
        if (!isDaxError(e, 'ENOSPC')) throw e;
      }
    }
    return this.tx.alloc(want, hint);
  }

  /** Set the size; shrinking drops whole blocks past it and zeroes the tail of the last one. */
  truncate(inode: InodeRec, path: string, size: number): void {
    // xfs_vn_setattr breaks the layouts (BREAK_UNMAP) before any size change, as fallocate does.
    withLayoutsBroken(this.holder, inode, path, 'truncate', () => this.setSize(inode, path, size));
  }

  private setSize(inode: InodeRec, path: string, size: number): void {
    const bs = this.bs;
    if (size < inode.size) {
      const keep = Math.ceil(size / bs);
      const old = Math.ceil(inode.size / bs);
      if (old > keep) {
        this.holder.beforeRelease(inode, path, keep, old - keep);
        this.bmap.dropRange(inode, keep, Math.max(old, this.lastMapped(inode)) - keep);
      }
      this.cow.cancel(inode.ino, keep); // xfs_itruncate_extents_flags -> xfs_reflink_cancel_cow_blocks
      if (size % bs !== 0) this.zeroRange(inode, path, size, keep * bs - size);
    }
    inode.size = size;
    inode.mtimeMs = nowMs();
    this.iput(inode);
  }

  /** One past the last mapped file block (0 for none). */
  lastMapped(inode: InodeRec): FileBlock {
    if (inode.extentRoot === 0) return 0;
    const r = this.bmap.extentTree(inode).lookupLe([MAX_KEY]);
    return r ? r.fblk + r.len : 0;
  }

  /** Zero bytes [offset, offset+length) inside one block, copying it on write; holes stay holes. */
  private zeroRange(inode: InodeRec, path: string, offset: number, length: number): void {
    if (length <= 0) return;
    const fblk = Math.floor(offset / this.bs);
    if (!this.bmap.lookup(this.bmap.extentTree(inode), fblk)) return;
    const size = inode.size;
    this.write(inode, path, offset, length, (buf, o, _p, n) => buf.fill(0, o, o + n));
    inode.size = size;
  }

  /** Deallocate whole blocks inside the range and zero the partial ones; the size stays. */
  punch(inode: InodeRec, path: string, offset: number, length: number): void {
    // xfs_file_fallocate breaks the layouts before it looks at the range.
    withLayoutsBroken(this.holder, inode, path, 'punch', () => this.punchRange(inode, path, offset, length));
  }

  private punchRange(inode: InodeRec, path: string, offset: number, length: number): void {
    const bs = this.bs;
    const end = Math.min(offset + length, inode.size);
    if (end <= offset) return;
    const first = Math.ceil(offset / bs);
    const last = Math.floor(end / bs);
    if (first < last) {
      // Private copies stay: truncate_pagecache_range unmaps with even_cows = false (only truncate drops them).
      this.holder.beforeRelease(inode, path, first, last - first, true);
      // The copy-on-write fork stays: xfs_free_file_space unmaps the data fork only (xfs_unmap_extent).
      this.bmap.dropRange(inode, first, last - first);
    }
    if (first > last) {
      this.zeroRange(inode, path, offset, end - offset); // inside one block
    } else {
      this.zeroRange(inode, path, offset, first * bs - offset);
      this.zeroRange(inode, path, last * bs, end - last * bs);
    }
    inode.mtimeMs = nowMs();
    this.iput(inode);
  }

  /**
   * The extents either side of file blocks [off, end): the last one starting
   * before off and the first one reaching past end (either may overlap the
   * range). Two lookups, not the file's whole map.
   */
  neighbours(inode: InodeRec, off: FileBlock, end: FileBlock): { before: ExtentRec | undefined; after: ExtentRec | undefined } {
    if (inode.extentRoot === 0) return { before: undefined, after: undefined };
    const tree = this.bmap.extentTree(inode);
    const b = off > 0 ? tree.lookupLe([off - 1]) : undefined;
    let a = tree.lookupLe([end]);
    if (!a || a.fblk + a.len <= end) a = undefined;
    if (!a)
      for (const r of tree.range([end + 1])) {
        a = r;
        break;
      }
    return { before: b && this.bmap.sound(tree, b), after: a && this.bmap.sound(tree, a) };
  }

  /** The file's extents in order, read until `visit` returns false (BlockMap.eachExtent). */
  eachExtent(inode: InodeRec, visit: (fblk: FileBlock, pblk: Blkno, len: number) => boolean): void {
    this.bmap.eachExtent(inode, visit);
  }

  /** The file's extents that intersect file blocks [off, end), in order (unclipped). */
  extentsIn(inode: InodeRec, off: FileBlock, end: FileBlock): ExtentRec[] {
    return inode.extentRoot === 0 ? [] : this.bmap.extentsIn(this.bmap.extentTree(inode), off, end);
  }

  /** The file's extents in order. */
  extents(inode: InodeRec): ExtentRec[] {
    if (inode.extentRoot === 0) return [];
    const tree = this.bmap.extentTree(inode);
    const out: ExtentRec[] = [];
    for (const e of tree.range()) out.push(this.bmap.sound(tree, e));
    return out;
  }

  /** ino -> path for every inode reachable from '/', built in one pass over the directory tree. */
  pathMap(): Map<Ino, string> {
    const parentOf = new Map<Ino, { parent: Ino; name: string }>();
    for (const d of this.dirents.range()) parentOf.set(d.child, { parent: d.parent, name: d.name.toString('utf8') });
    const paths = new Map<Ino, string>([[ROOT_INO, '/']]);
    const resolve = (ino: Ino): string => {
      const chain: { ino: Ino; name: string }[] = [];
      let cur = ino;
      while (!paths.has(cur)) {
        const p = parentOf.get(cur);
        if (!p || chain.length > parentOf.size) return `<inode ${ino}>`;
        chain.push({ ino: cur, name: p.name });
        cur = p.parent;
      }
      let base = paths.get(cur)!;
      for (let i = chain.length - 1; i >= 0; i--) {
        base = joinPath(base, chain[i]!.name);
        paths.set(chain[i]!.ino, base);
      }
      return base;
    };
    for (const ino of parentOf.keys()) resolve(ino);
    return paths;
  }
}

export function typeName(t: number): FileType {
  return t === INODE_TYPE_DIR ? 'dir' : 'file';
}
