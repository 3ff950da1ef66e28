/**
 * The daxtool side of the oracle: runs a scenario script (oracle/scenario.mjs) through the library in
 * dist/ on a fresh image of the chosen page model, and reports after every step the same facts the kernel
 * side reports (oracle/facts.mjs): the step's outcome, the word read, the SIGBUS signals, and the state:
 * every present (worker, slot, page) → frame, every (file, page) → block and SHARED flag.
 *
 * daxtool emulates page tables, not memory stores: a touch that writes stores its page into the frame the
 * fault mapped — the device block for a file frame, a shadow page here for a DRAM frame (an anonymous or a
 * page-cache copy; a DRAM frame never written reads as the block it copied) — and reads read the frame.
 *
 * Contract: new DaxSide({ img, model, variant, kernel }) makes the image (overwriting img; under the `linux`
 * model it follows Linux `kernel`, '6.12' or '6.18', the version the guest booted); step(line) runs one
 * script line and returns { r, v?, sig[] }; state() returns { pages, blocks } (oracle/facts.mjs).
 * Methods the machine may lack (older page models): setKillPolicy → the step fails with ENOSYS;
 * poisonAddr → poison(block) of the frame mapped there, signals without code or lsb.
 */
import { constants } from 'node:os';
import { Filesystem, dax } from '../dist/index.js';

const PAGE = 4096;
const PMD_PAGES = 512;
const ERRNO = constants.errno;

export function patternPage(seed, page, pages = 1) {
  const b = Buffer.alloc(pages * PAGE);
  for (let p = 0; p < pages; p++) {
    const w = (BigInt(seed) << 32n) | BigInt(page + p);
    for (let i = 0; i < PAGE / 8; i++) b.writeBigUInt64LE(w, p * PAGE + i * 8);
  }
  return b;
}

const hexWord = (buf) => '0x' + buf.readBigUInt64LE(0).toString(16);

function errnoOf(e) {
  if (e && typeof e.code === 'string' && ERRNO[e.code] !== undefined) return ERRNO[e.code];
  throw e;
}

export class DaxSide {
  constructor({ img, model, variant, kernel, sizeBytes = variant === 'pmd' ? 512 << 20 : 64 << 20 }) {
    this.variant = variant;
    this.model = model;
    Filesystem.mkfs(img, { sizeBytes, pageModel: model, force: true, ...(model === 'linux' && kernel ? { linuxKernel: kernel } : {}) });
    this.fs = Filesystem.open(img, { write: true });
    this.d = new dax.Dax(this.fs);
    this.totalBlocks = this.fs.superblock.totalBlocks;
    this.nfiles = 0;
    /** worker → slot → { addr, npg, file } */
    this.slots = [];
    this.shadow = new Map();
  }

  close() {
    this.fs.close();
  }

  path(f) {
    return `/f${f}`;
  }

  pid(w) {
    return 1000 + w;
  }

  workerOf(pid) {
    return pid - 1000;
  }

  /** Where addr of pid falls: { slot, pg } or null. */
  slotOf(w, addr) {
    const sl = this.slots[w] ?? [];
    for (let s = 0; s < sl.length; s++) {
      const x = sl[s];
      if (x && addr >= x.addr && addr < x.addr + x.npg * PAGE) return { slot: s, pg: Math.floor((addr - x.addr) / PAGE) };
    }
    return null;
  }

  machine(fn, write = true) {
    return write ? this.fs.mutate((fx) => fn(dax.machineOf(fx))) : this.fs.view((fx) => fn(dax.machineOf(fx)));
  }

  /** Whether file page pg of file f is a hole. */
  isHole(f, pg) {
    return !this.fs.fiemap(this.path(f)).some((x) => x.logical <= pg * PAGE && pg * PAGE < x.logical + x.length);
  }

  frameAt(pid, addr) {
    const t = this.machine((m) => m.translate(pid, addr), false);
    return t ? t.frame : null;
  }

  readFrame(frame) {
    if (frame < this.totalBlocks) return this.fs.device.read(frame);
    const s = this.shadow.get(frame);
    if (s) return s;
    const info = this.d.pages(frame);
    const src = info.descriptors.find((x) => x.src !== undefined)?.src;
    return src !== undefined ? this.fs.device.read(src) : Buffer.alloc(PAGE);
  }

  storeFrame(frame, buf) {
    if (frame < this.totalBlocks) this.fs.device.write(frame, buf);
    else this.shadow.set(frame, buf);
  }

  signal(w, code, lsb, addr) {
    const at = addr === undefined || addr === null ? null : this.slotOf(w, addr);
    return { w, code: code ?? null, lsb: lsb ?? null, slot: at ? at.slot : -1, pg: at ? at.pg : -1 };
  }

  /** Run one script line. */
  step(line) {
    const a = line.trim().split(/\s+/);
    try {
      return this.exec(a);
    } catch (e) {
      return { r: errnoOf(e), sig: [] };
    }
  }

  exec(a) {
    const n = (i) => Number(a[i]);
    switch (a[0]) {
      case 'create': {
        this.fs.writeFile(this.path(n(1)), 0, patternPage(n(3), 0, n(2)));
        // As the guest does (kq.c set_hints): in the pmd variant a 2 MiB extent-size hint and a one-block
        // copy-on-write hint, so XFS's copy-on-write hint is 2 MiB (xfs_get_cowextsz_hint). The 4 KiB variant
        // sets only the one-block COW hint, which is daxtool's behaviour without hints.
        if (this.variant === 'pmd' && typeof this.fs.extsize === 'function')
          this.fs.extsize(this.path(n(1)), { extsize: PMD_PAGES, cowextsize: 1 });
        this.nfiles = Math.max(this.nfiles, n(1) + 1);
        return { r: 0, sig: [] };
      }
      case 'workers':
        return { r: 0, sig: [] };
      case 'write':
        this.fs.writeFile(this.path(n(1)), n(2) * PAGE, patternPage(n(3), n(2)));
        return { r: 0, sig: [] };
      case 'pread':
        return { r: 0, v: hexWord(this.fs.readRange(this.path(n(1)), n(2) * PAGE, 8)), sig: [] };
      case 'fiemap':
        this.fs.fiemap(this.path(n(1)));
        return { r: 0, sig: [] };
      case 'clone':
        this.fs.reflink(this.path(n(1)), this.path(n(3)), { srcOffset: n(2) * PAGE, dstOffset: n(4) * PAGE, length: n(5) * PAGE });
        return { r: 0, sig: [] };
      case 'punch':
        this.fs.punch(this.path(n(1)), n(2) * PAGE, n(3) * PAGE);
        return { r: 0, sig: [] };
      case 'unshare':
        this.fs.unshare(this.path(n(1)), n(2) * PAGE, n(3) * PAGE);
        return { r: 0, sig: [] };
      case 'W':
        return this.worker(n(1), a.slice(2));
      default:
        return { r: ERRNO.EINVAL, sig: [] };
    }
  }

  worker(w, a) {
    const pid = this.pid(w);
    const n = (i) => Number(a[i]);
    switch (a[0]) {
      case 'early': {
        const ok = this.machine((m) => {
          if (typeof m.setKillPolicy !== 'function') return false;
          m.setKillPolicy(pid, n(1) ? 'early' : 'late');
          return true;
        });
        return { r: ok ? 0 : ERRNO.ENOSYS, sig: [] };
      }
      case 'map': {
        const f = n(2);
        const m = this.d.mmap({ path: this.path(f), pid, private: a[3] === 'p' });
        (this.slots[w] ??= [])[n(1)] = { addr: m.addr, npg: m.length / PAGE, file: f };
        return { r: 0, sig: [] };
      }
      case 'touch': {
        const sl = this.slots[w]?.[n(1)];
        const pg = n(2);
        if (!sl || pg < 0 || pg >= sl.npg) return { r: ERRNO.EINVAL, sig: [] };
        const addr = sl.addr + pg * PAGE;
        const write = a[3] === 'w';
        const rec = this.d.fault({ pid, addr, length: PAGE, write }).faults[0];
        if (rec.result === 'sigbus') return { r: -1, sig: [this.signal(w, rec.code, rec.lsb, addr)] };
        if (rec.result === 'sigsegv') return { r: -2, sig: [] };
        const frame = this.frameAt(pid, addr);
        if (write) this.storeFrame(frame, patternPage(n(4), pg));
        return { r: 0, v: hexWord(this.readFrame(frame)), sig: [] };
      }
      case 'poison': {
        const sl = this.slots[w]?.[n(1)];
        const pg = n(2);
        if (!sl || pg < 0 || pg >= sl.npg) return { r: ERRNO.EINVAL, sig: [] };
        const addr = sl.addr + pg * PAGE;
        // As the guest (kq.c): the zero page is not injected (a hole, mapped or about to be).
        const at = this.frameAt(pid, addr);
        const zero = this.machine((m) => m.zeroFrame, false);
        if (at === zero || (at === null && this.isHole(sl.file, pg))) return { r: -3, sig: [] };
        const res = this.machine((m) => (typeof m.poisonAddr === 'function' ? m.poisonAddr(pid, addr) : null));
        // madvise faulted the zero page in (committed) and memory_failure ignored it (linux model).
        if (res?.refused) return { r: ERRNO.EBUSY, sig: [] };
        if (res) {
          const sigOf = (s) => this.signal(this.workerOf(s.pid), s.code, s.lsb, s.addr);
          return { r: 0, sig: (res.signals ?? []).map(sigOf), merged: (res.merged ?? []).map(sigOf) };
        }
        // No injection at an address in this machine: poison the block mapped there (madvise faults it in first).
        let frame = this.frameAt(pid, addr);
        if (frame === null) {
          this.d.fault({ pid, addr, length: PAGE, write: false });
          frame = this.frameAt(pid, addr);
        }
        if (frame === null || frame >= this.totalBlocks) return { r: ERRNO.EINVAL, sig: [] };
        const p = this.d.poison(frame);
        return { r: 0, sig: p.killed.map((k) => this.signal(this.workerOf(k), null, null, null)) };
      }
      default:
        return { r: ERRNO.EINVAL, sig: [] };
    }
  }

  /** { pages: Map 'w.slot.pg' → frame id, blocks: Map 'f.pg' → { b, sh } } (frame ids: oracle/facts.mjs). */
  state() {
    const pages = new Map();
    const total = this.totalBlocks;
    for (const e of this.d.ptdump()) {
      const w = this.workerOf(e.pid);
      const at = this.slotOf(w, e.addr);
      if (!at) continue;
      const kind = e.kind === 'file' && e.pfn < total ? 'b' : e.kind === 'zero' ? 'z' : e.kind === 'copy' ? 'c' : 'a';
      const npg = e.level === 'pmd' ? PMD_PAGES : 1;
      for (let i = 0; i < npg; i++) pages.set(`${w}.${at.slot}.${at.pg + i}`, `${kind}${e.pfn + i}`);
    }
    const blocks = new Map();
    for (let f = 0; f < this.nfiles; f++) {
      for (const x of this.fs.fiemap(this.path(f))) {
        const l0 = x.logical / PAGE;
        for (let i = 0; i < x.length / PAGE; i++) blocks.set(`${f}.${l0 + i}`, { b: `b${x.physical / PAGE + i}`, sh: x.shared });
      }
    }
    return { pages, blocks };
  }
}
