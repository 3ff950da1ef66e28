/**
 * Facts and their comparison: the kernel's guest output replayed into per-step states, block numbers and
 * frames canonicalised, and the per-property agreement of two sides.
 *
 * A side's state after a step: pages — Map 'w.slot.pg' → frame id of every present page of every worker's
 * mapping; blocks — Map 'f.pg' → { b: block id, sh: FIEMAP SHARED flag }. Frame ids: 'b<block>' a device
 * block (pmem), 'a<n>' anonymous DRAM, 'c<n>' a DRAM page-cache copy (daxtool's pagecache model), 'z<n>'
 * the zero page. A step's result: { r: 0 | errno | -1 (SIGBUS) | -2 (SIGSEGV) | -3 (a poison step not injected: the zero page), v?: first word read,
 * sig: [{ w, code, lsb, slot, pg }], merged?: the same, daxtool only }.
 *
 * Signals: daxtool's `sig` are the SIGBUS each process gets when it does not run during the step; `merged`
 * are further sends to a process that had one pending, which the kernel drops (legacy_queue) unless the
 * process ran and took the first in between — a race on the guest's two CPUs. The kernel agrees when it
 * delivered every one of `sig` and nothing outside `sig` and `merged`.
 *
 * Each side allocates its own blocks and frames, so nothing compares raw numbers: frames are compared as the
 * partition they induce on (worker, slot, page) and (file, page), moves and unmaps within each side.
 */

export const PROPERTIES = ['outcome', 'data', 'present', 'frames', 'blocks', 'shared', 'moved', 'unmapped', 'signals'];

const SI_CODES = { 1: 'BUS_ADRALN', 2: 'BUS_ADRERR', 3: 'BUS_OBJERR', 4: 'BUS_MCEERR_AR', 5: 'BUS_MCEERR_AO' };

/**
 * Replays the guest's lines of one run (oracle/guest/kq.c) step by step.
 * steps() yields, for step 1..nsteps, { result, state } (the state object is reused: copy what you keep).
 */
export class KernelReplay {
  constructor(lines, base) {
    this.base = base;
    this.byStep = new Map();
    /** The guest's zero page (kq.c reports its pfn first): a read of a file hole maps it, as daxtool's zero frame. */
    this.zeroPfn = null;
    for (const o of lines) {
      if (o.zero !== undefined) {
        this.zeroPfn = o.zero;
        continue;
      }
      if (!this.byStep.has(o.s)) this.byStep.set(o.s, []);
      this.byStep.get(o.s).push(o);
    }
    this.pages = new Map();
    this.blocks = new Map();
  }

  frameId(pfn) {
    return pfn >= this.base ? `b${pfn - this.base}` : pfn === this.zeroPfn ? `z${pfn}` : `a${pfn}`;
  }

  step(s) {
    const res = { r: null, sig: [] };
    for (const o of this.byStep.get(s) ?? []) {
      if (o.died) throw new Error(`guest worker ${o.w} died at step ${s}`);
      if ('r' in o && o.w === undefined) {
        res.r = o.r;
        if (o.v !== undefined) res.v = o.v;
      }
      if (o.c)
        for (const [slot, pg, n, pfn] of o.c)
          for (let i = 0; i < n; i++) {
            const k = `${o.w}.${slot}.${pg + i}`;
            if (pfn === 0) this.pages.delete(k);
            else this.pages.set(k, this.frameId(pfn + i));
          }
      if (o.g) for (const [code, lsb, slot, pg] of o.g) res.sig.push({ w: o.w, code: SI_CODES[code] ?? `si_code ${code}`, lsb, slot, pg });
      if (o.e) {
        for (const k of [...this.blocks.keys()]) if (k.startsWith(`${o.f}.`)) this.blocks.delete(k);
        for (const [l, p, n, sh] of o.e) for (let i = 0; i < n; i++) this.blocks.set(`${o.f}.${l + i}`, { b: `b${p + i}`, sh: !!sh });
      }
    }
    if (res.r === null) throw new Error(`guest output has no result for step ${s}`);
    return { result: res, state: { pages: this.pages, blocks: this.blocks } };
  }
}

export function copyState(st) {
  return { pages: new Map(st.pages), blocks: new Map(st.blocks) };
}

const sorted = (xs) => [...xs].sort();
const setText = (xs) => sorted(xs).join(' ');

/** Groups of members by frame, as sorted text; only frames with at least one member in `keep`. */
function partition(st, keepPage) {
  const g = new Map();
  const add = (frame, m) => {
    if (!g.has(frame)) g.set(frame, []);
    g.get(frame).push(m);
  };
  for (const [k, f] of st.pages) if (keepPage(k)) add(f, k);
  const mapped = new Set(g.keys());
  for (const [k, x] of st.blocks) if (mapped.has(x.b)) add(x.b, `f${k}`);
  return sorted(
    [...g].map(([f, ms]) => `${f[0] === 'b' ? 'file' : f[0] === 'a' ? 'anon' : f[0] === 'c' ? 'copy' : 'zero'}{${sorted(ms).join(',')}}`),
  );
}

function blockGroups(st) {
  const g = new Map();
  for (const [k, x] of st.blocks) {
    if (!g.has(x.b)) g.set(x.b, []);
    g.get(x.b).push(k);
  }
  return sorted([...g.values()].filter((m) => m.length > 1).map((m) => `{${sorted(m).join(',')}}`));
}

function movedOf(prev, cur) {
  const out = [];
  for (const [k, x] of cur.blocks) {
    const p = prev.blocks.get(k);
    if (p && p.b !== x.b) out.push(k);
  }
  return out;
}

function unmappedOf(prev, cur) {
  const out = [];
  for (const [k, f] of prev.pages) {
    const c = cur.pages.get(k);
    if (c === undefined) out.push(k);
    else if (c !== f) out.push(`${k}~`);
  }
  return out;
}

/** si_addr_lsb means something for memory-failure codes only (the kernel leaves 0 in the others). */
const MCE = new Set(['BUS_MCEERR_AR', 'BUS_MCEERR_AO']);
const sigKey = (s) => `w${s.w}:${s.code ?? '?'}${MCE.has(s.code) ? `/lsb${s.lsb ?? '?'}` : ''}@${s.slot}.${s.pg}`;
/** A step's signals as text; merged ones (daxtool's, see the top) carry a trailing '?'. */
const sigText = (res) => sorted([...res.sig.map(sigKey), ...(res.merged ?? []).map((s) => `${sigKey(s)}?`)]).join(' ');

/** Whether the kernel's delivered signals `k` fit daxtool's result `d`: all of d.sig, the rest from d.merged. */
function signalsAgree(k, d) {
  const left = new Map();
  for (const s of k.sig) left.set(sigKey(s), (left.get(sigKey(s)) ?? 0) + 1);
  const take = (s) => {
    const n = left.get(sigKey(s)) ?? 0;
    if (n) left.set(sigKey(s), n - 1);
    return n > 0;
  };
  if (!d.sig.every(take)) return false;
  for (const s of d.merged ?? []) take(s);
  return [...left.values()].every((n) => n === 0);
}

/**
 * The facts of one step, per property, as comparable text. `other` is the other side's state (frames are
 * compared over the pages present on both sides, so a presence difference is counted once, under present).
 */
export function stepFacts(prev, cur, result, other) {
  const both = (k) => other.pages.has(k);
  return {
    outcome: String(result.r),
    data: result.v === undefined ? null : result.v,
    present: setText(cur.pages.keys()),
    frames: partition(cur, both).join(' '),
    blocks: blockGroups(cur).join(' '),
    shared: setText([...cur.blocks].filter(([, x]) => x.sh).map(([k]) => k)),
    moved: setText(movedOf(prev, cur)),
    unmapped: setText(unmappedOf(prev, cur)),
    signals: sigText(result),
  };
}

/** Whether two maps agree through one bijection of their values (a → b and back), over the keys kept. */
function bijective(A, B, keep, va, vb, ab = new Map(), ba = new Map()) {
  for (const [key, x] of A) {
    if (!keep(key)) continue;
    const y = B.get(key);
    if (y === undefined) return false;
    const fa = va(x);
    const fb = vb(y);
    if (fa[0] !== fb[0]) return false;
    const m = ab.get(fa);
    const n = ba.get(fb);
    if (m === undefined && n === undefined) {
      ab.set(fa, fb);
      ba.set(fb, fa);
    } else if (m !== fb || n !== fa) return false;
  }
  return true;
}

function sameKeys(A, B) {
  if (A.size !== B.size) return false;
  for (const k of A.keys()) if (!B.has(k)) return false;
  return true;
}

/**
 * Linear-time checks that say "agrees" for sure when they pass (a failing check is judged again on the
 * textual facts, which also make the report).
 */
function quickSame(kPrev, kCur, kRes, dPrev, dCur, dRes) {
  const id = (x) => x;
  const blk = (x) => x.b;
  const both = (k) => dCur.pages.has(k);
  // frames: one bijection of frames over the pages present on both sides, extended by the blocks of those frames.
  let frames = false;
  {
    const ab = new Map();
    const ba = new Map();
    if (bijective(kCur.pages, dCur.pages, both, id, id, ab, ba)) {
      frames = true;
      for (const [key, x] of kCur.blocks) {
        const y = dCur.blocks.get(key);
        const m = ab.get(x.b);
        const n = y && ba.get(y.b);
        if ((m !== undefined || n !== undefined) && (!y || m !== y.b || n !== x.b)) {
          frames = false;
          break;
        }
      }
      if (frames) for (const [key, y] of dCur.blocks) if (ba.has(y.b) && !kCur.blocks.has(key)) frames = false;
    }
  }
  const shared = kCur.blocks.size === dCur.blocks.size && [...kCur.blocks].every(([key, x]) => dCur.blocks.get(key)?.sh === x.sh);
  return {
    outcome: String(kRes.r) === String(dRes.r),
    data: kRes.v === dRes.v,
    present: sameKeys(kCur.pages, dCur.pages),
    frames,
    blocks: kCur.blocks.size === dCur.blocks.size && bijective(kCur.blocks, dCur.blocks, () => true, blk, blk),
    shared,
    moved: setText(movedOf(kPrev, kCur)) === setText(movedOf(dPrev, dCur)),
    unmapped: setText(unmappedOf(kPrev, kCur)) === setText(unmappedOf(dPrev, dCur)),
    signals: signalsAgree(kRes, dRes),
  };
}

/** Per-property tallies and the first disagreements. */
export class Tally {
  constructor(keep = 5) {
    this.keep = keep;
    this.props = Object.fromEntries(PROPERTIES.map((p) => [p, { compared: 0, agreed: 0, disagreed: 0, first: [] }]));
  }

  /** Compare one step of both sides; where = { run, variant, seed, step, line }. */
  add(where, kPrev, kCur, kRes, dPrev, dCur, dRes) {
    const same = quickSame(kPrev, kCur, kRes, dPrev, dCur, dRes);
    let k = null;
    let d = null;
    for (const p of PROPERTIES) {
      if (p === 'data' && kRes.v === undefined && dRes.v === undefined) continue;
      const t = this.props[p];
      t.compared++;
      if (same[p]) {
        t.agreed++;
        continue;
      }
      // The slow, textual form: the one reported (and the judge when the quick check is unsure; the signal
      // check is exact, and daxtool's merged signals make its text differ where the sides agree).
      k ??= stepFacts(kPrev, kCur, kRes, dCur);
      d ??= stepFacts(dPrev, dCur, dRes, kCur);
      if (p !== 'signals' && k[p] === d[p]) t.agreed++;
      else {
        t.disagreed++;
        if (t.first.length < this.keep) t.first.push({ ...where, kernel: clip(k[p]), daxtool: clip(d[p]), ...diffOf(k[p], d[p]) });
      }
    }
  }

  get agreed() {
    return PROPERTIES.every((p) => this.props[p].disagreed === 0);
  }

  counts() {
    return Object.fromEntries(
      PROPERTIES.map((p) => [p, { compared: this.props[p].compared, agreed: this.props[p].agreed, disagreed: this.props[p].disagreed }]),
    );
  }
}

function clip(s, n = 600) {
  if (s === null) return null;
  return s.length > n ? s.slice(0, n) + ` … (${s.length} chars)` : s;
}

/** For space-separated set texts: what only one side has. */
function diffOf(a, b) {
  if (a === null || b === null) return {};
  const A = new Set(a.split(' ').filter(Boolean));
  const B = new Set(b.split(' ').filter(Boolean));
  const onlyK = [...A].filter((x) => !B.has(x));
  const onlyD = [...B].filter((x) => !A.has(x));
  return { onlyKernel: clip(onlyK.join(' '), 400), onlyDaxtool: clip(onlyD.join(' '), 400) };
}

/**
 * Compare one run: the kernel's guest lines against a daxtool side (anything with step(line) and state()).
 * Returns the tally (created if not given).
 */
export function compareRun({ script, kernelLines, base, side, where = {}, tally = new Tally() }) {
  const kr = new KernelReplay(kernelLines, base);
  let kPrev = { pages: new Map(), blocks: new Map() };
  let dPrev = { pages: new Map(), blocks: new Map() };
  script.forEach((line, i) => {
    const { result: kRes, state: kSt } = kr.step(i + 1);
    const dRes = side.step(line);
    const dSt = side.state();
    tally.add({ ...where, step: i + 1, line }, kPrev, kSt, kRes, dPrev, dSt, dRes);
    kPrev = copyState(kSt);
    dPrev = dSt;
  });
  return tally;
}
