import { describe, expect, it } from 'vitest';
import { BLOCK_MAGIC, sealBlock } from '../src/format/block.js';
import { DaxError } from '../src/format/errors.js';
import {
  COUNTER_SLOTS,
  CounterId,
  FEATURES,
  LINUX_KERNELS,
  PAGE_MODEL_NAMES,
  ROOT_SLOTS,
  RootId,
  SB_PAYLOAD_END,
  SB_VERSION,
  assertWritable,
  checkGeometry,
  decodeSuperblock,
  encodeSuperblock,
  loadSuperblock,
  makeSuperblock,
  otherSlot,
  pickSuperblock,
  probeBlockSize,
  type Superblock,
  type SuperblockSlot,
} from '../src/format/superblock.js';

const BS = 4096;

function sample(over: Partial<Superblock> = {}): Superblock {
  const sb = makeSuperblock({
    blockSize: BS,
    totalBlocks: 1024,
    pageModel: 'pfn-entry',
    label: 'tëst-label',
    uuid: '0123abcd-4567-89ef-0123-456789abcdef',
    nowMs: 1_700_000_000_000,
  });
  sb.roots[RootId.Inode] = 17;
  sb.roots[RootId.Poison] = 1023;
  sb.counters[CounterId.FreeBlocks] = 900;
  sb.counters[CounterId.NextIno] = 2 ** 40;
  const out = { ...sb, ...over };
  if (out.totalBlocks <= 1023) out.roots = out.roots.map(() => 0);
  return out;
}

function thrown(fn: () => unknown): DaxError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DaxError);
    return e as DaxError;
  }
  throw new Error('expected a DaxError');
}

/** An image in memory: two slots at the given block size. */
function image(slots: (Buffer | null)[], bs = BS, blocks = 1024): Buffer {
  const img = Buffer.alloc(bs * Math.max(2, Math.min(blocks, 4)));
  slots.forEach((b, i) => b?.copy(img, i * bs));
  return img;
}
const readerOf =
  (img: Buffer, bs = BS) =>
  (slot: SuperblockSlot): Buffer | null =>
    (slot + 1) * bs <= img.length ? Buffer.from(img.subarray(slot * bs, (slot + 1) * bs)) : null;
const readAtOf = (img: Buffer) => (off: number, len: number) =>
  off + len <= img.length ? Buffer.from(img.subarray(off, off + len)) : null;

/** Patch a field and re-seal, so only the semantic check can fail. */
function patched(sb: Superblock, slot: SuperblockSlot, patch: (b: Buffer) => void): Buffer {
  const b = encodeSuperblock(sb, sb.blockSize, slot);
  patch(b);
  sealBlock(b, slot, sb.generation);
  return b;
}

describe('superblock encode/decode', () => {
  it('round-trips every field', () => {
    const sb = sample({ generation: 42, compat: 0x80 });
    for (const slot of [0, 1] as const) {
      const buf = encodeSuperblock(sb, BS, slot);
      expect(buf.length).toBe(BS);
      expect(buf.readUInt32LE(0)).toBe(BLOCK_MAGIC);
      expect(decodeSuperblock(buf, slot)).toEqual(sb);
    }
    expect(sb.roots).toHaveLength(ROOT_SLOTS);
    expect(sb.counters).toHaveLength(COUNTER_SLOTS);
  });

  it('fits the smallest block size and round-trips there', () => {
    expect(SB_PAYLOAD_END).toBeLessThanOrEqual(512);
    const sb = sample({ blockSize: 512 });
    expect(decodeSuperblock(encodeSuperblock(sb, 512, 1), 1)).toEqual(sb);
  });

  it('maps every page model', () => {
    for (const pm of PAGE_MODEL_NAMES) {
      const sb = sample({ pageModel: pm });
      expect(decodeSuperblock(encodeSuperblock(sb, BS, 0), 0).pageModel).toBe(pm);
    }
  });

  it('refuses bad inputs to encode', () => {
    expect(thrown(() => encodeSuperblock(sample({ label: 'x'.repeat(64) }), BS, 0)).code).toBe('EINVAL');
    expect(thrown(() => encodeSuperblock(sample(), 512, 0)).code).toBe('EINVAL');
    expect(thrown(() => makeSuperblock({ blockSize: 3000, totalBlocks: 100 })).code).toBe('EINVAL');
    expect(thrown(() => makeSuperblock({ blockSize: 4096, totalBlocks: 8 })).code).toBe('EINVAL');
    expect(thrown(() => makeSuperblock({ blockSize: 65536, totalBlocks: 2 ** 40 })).code).toBe('EINVAL');
  });

  it('catches a flipped bit anywhere in the block, unused bytes included', () => {
    const buf = encodeSuperblock(sample(), BS, 0);
    buf[BS - 1] ^= 1;
    const e = thrown(() => decodeSuperblock(buf, 0));
    expect(e.code).toBe('ECORRUPT');
    expect(e.message).toMatch(/superblock slot 0.*block\.crc/);
  });

  it('catches a slot written to the wrong place', () => {
    const buf = encodeSuperblock(sample(), BS, 0);
    const e = thrown(() => decodeSuperblock(buf, 1));
    expect(e.code).toBe('ECORRUPT');
    expect(e.message).toMatch(/superblock slot 1.*block\.blkno/);
  });

  it('refuses a newer format version', () => {
    const buf = patched(sample(), 0, (b) => b.writeUInt32LE(7, 48));
    const e = thrown(() => decodeSuperblock(buf, 0));
    expect(e.code).toBe('EOPNOTSUPP');
    expect(e.message).toContain(`image format version 7 is newer than this daxtool (${SB_VERSION})`);
  });

  it('refuses unknown incompat features, naming the bits', () => {
    const e = thrown(() => decodeSuperblock(encodeSuperblock(sample({ incompat: 0x24 }), BS, 0), 0));
    expect(e.code).toBe('EOPNOTSUPP');
    expect(e.message).toMatch(/superblock slot 0.*0x24/);
  });

  it('opens unknown rocompat read-only only', () => {
    const sb = sample({ rocompat: 0x2 });
    const img = image([encodeSuperblock(sb, BS, 0), encodeSuperblock({ ...sb, generation: 0 }, BS, 1)]);
    const pick = pickSuperblock(readerOf(img));
    expect(pick.readOnly).toBe(true);
    expect(thrown(() => assertWritable(pick.sb)).code).toBe('EOPNOTSUPP');
    expect(() => assertWritable(sample())).not.toThrow();
  });

  it('refuses bad block size and geometry', () => {
    const bsBad = patched(sample(), 0, (b) => b.writeUInt32LE(3000, 64));
    expect(thrown(() => decodeSuperblock(bsBad, 0)).message).toMatch(/superblock slot 0: block size 3000/);
    const bsMismatch = patched(sample(), 0, (b) => b.writeUInt32LE(8192, 64));
    expect(thrown(() => decodeSuperblock(bsMismatch, 0)).code).toBe('ECORRUPT');
    const tiny = patched(sample(), 0, (b) => b.writeUInt32LE(4, 72));
    expect(thrown(() => decodeSuperblock(tiny, 0)).message).toMatch(/minimum of 16 blocks/);
    const huge = patched(sample(), 0, (b) => {
      b.writeUInt32LE(0, 72);
      b.writeUInt32LE(0x200000, 76); // 2^53 blocks
    });
    expect(thrown(() => decodeSuperblock(huge, 0)).code).toBe('ECORRUPT');
    const pm = patched(sample(), 0, (b) => b.writeUInt32LE(6, 68));
    expect(thrown(() => decodeSuperblock(pm, 0)).message).toMatch(/page model 6/);
    const root = patched(sample(), 0, (b) => b.writeUInt32LE(5000, 176));
    expect(thrown(() => decodeSuperblock(root, 0)).message).toMatch(/root Inode/);
  });

  it('says "no magic" for a foreign block', () => {
    const e = thrown(() => decodeSuperblock(Buffer.alloc(BS), 1));
    expect(e.code).toBe('EINVAL');
    expect(e.message).toMatch(/superblock slot 1/);
  });
});

describe('pickSuperblock', () => {
  it('picks the newest generation', () => {
    const img = image([encodeSuperblock(sample({ generation: 5 }), BS, 0), encodeSuperblock(sample({ generation: 6 }), BS, 1)]);
    const pick = pickSuperblock(readerOf(img));
    expect(pick.slot).toBe(1);
    expect(pick.sb.generation).toBe(6);
    expect(pick.problems).toEqual([]);
    expect(otherSlot(pick.slot)).toBe(0);
    const img2 = image([encodeSuperblock(sample({ generation: 9 }), BS, 0), encodeSuperblock(sample({ generation: 6 }), BS, 1)]);
    expect(pickSuperblock(readerOf(img2)).slot).toBe(0);
  });

  it('falls back to the other slot when the newest is torn, and says which was bad', () => {
    const newest = encodeSuperblock(sample({ generation: 8 }), BS, 0);
    newest.fill(0, 256); // torn write: only the first sector part reached the disk (the old slot was zeros)
    const img = image([newest, encodeSuperblock(sample({ generation: 7 }), BS, 1)]);
    const pick = pickSuperblock(readerOf(img));
    expect(pick.slot).toBe(1);
    expect(pick.sb.generation).toBe(7);
    expect(pick.problems).toHaveLength(1);
    expect(pick.problems[0]).toMatch(/superblock slot 0.*crc/);
  });

  it('both slots bad → ECORRUPT naming both', () => {
    const a = encodeSuperblock(sample({ generation: 2 }), BS, 0);
    const b = encodeSuperblock(sample({ generation: 3 }), BS, 1);
    a[100] ^= 0xff;
    b[200] ^= 0xff;
    const e = thrown(() => pickSuperblock(readerOf(image([a, b]))));
    expect(e.code).toBe('ECORRUPT');
    expect(e.message).toMatch(/superblock slot 0.*superblock slot 1/);
  });

  it('no magic anywhere → EINVAL not a daxtool image', () => {
    const img = Buffer.alloc(BS * 4, 0x5a);
    const e = thrown(() => pickSuperblock(readerOf(img)));
    expect(e.code).toBe('EINVAL');
    expect(e.message).toContain('not a daxtool image');
    expect(thrown(() => loadSuperblock(readAtOf(img), img.length, '/x.img')).code).toBe('EINVAL');
    expect(thrown(() => loadSuperblock(readAtOf(Buffer.alloc(10)), 10)).code).toBe('EINVAL');
  });

  it('does not roll back past a newer slot it cannot read', () => {
    const newer = patched(sample({ generation: 10 }), 1, (b) => b.writeUInt32LE(SB_VERSION + 1, 48));
    const img = image([encodeSuperblock(sample({ generation: 9 }), BS, 0), newer]);
    expect(thrown(() => pickSuperblock(readerOf(img))).code).toBe('EOPNOTSUPP');
  });
});

describe('loadSuperblock', () => {
  it('finds the block size from slot 0 and checks the file size', () => {
    for (const bs of [512, 4096, 65536]) {
      const sb = sample({ blockSize: bs, totalBlocks: 16, generation: 3 });
      const img = Buffer.alloc(bs * 16);
      encodeSuperblock(sb, bs, 0).copy(img, 0);
      encodeSuperblock({ ...sb, generation: 4 }, bs, 1).copy(img, bs);
      expect(probeBlockSize(img.subarray(0, Math.min(4096, img.length)))).toBe(bs);
      const pick = loadSuperblock(readAtOf(img), img.length);
      expect(pick.sb.blockSize).toBe(bs);
      expect(pick.slot).toBe(1);
      const short = img.subarray(0, bs * 8);
      const e = thrown(() => loadSuperblock(readAtOf(short), short.length, '/img'));
      expect(e.code).toBe('ECORRUPT');
      expect(e.message).toMatch(/truncated/);
    }
  });

  it('finds slot 1 when slot 0 is destroyed', () => {
    const bs = 8192;
    const sb = sample({ blockSize: bs, totalBlocks: 16, generation: 3 });
    const img = Buffer.alloc(bs * 16);
    img.fill(0xee, 0, bs); // slot 0 garbage, no magic
    encodeSuperblock(sb, bs, 1).copy(img, bs);
    const pick = loadSuperblock(readAtOf(img), img.length);
    expect(pick.slot).toBe(1);
    expect(pick.sb.blockSize).toBe(bs);
    expect(pick.problems[0]).toMatch(/superblock slot 0/);
  });

  it('both slots corrupt → ECORRUPT', () => {
    const sb = sample({ totalBlocks: 16 });
    const img = Buffer.alloc(BS * 16);
    encodeSuperblock(sb, BS, 0).copy(img, 0);
    encodeSuperblock(sb, BS, 1).copy(img, BS);
    img[300] ^= 1;
    img[BS + 300] ^= 1;
    expect(thrown(() => loadSuperblock(readAtOf(img), img.length)).code).toBe('ECORRUPT');
  });

  it('checkGeometry accepts an exact-size file', () => {
    const sb = sample();
    expect(() => checkGeometry(sb, sb.totalBlocks * sb.blockSize)).not.toThrow();
    expect(thrown(() => checkGeometry(sb, sb.totalBlocks * sb.blockSize - 1)).code).toBe('ECORRUPT');
  });
});

describe('the Linux version of the linux page model (word at 496, rocompat linuxKernel)', () => {
  const linux = (linuxKernel: '6.12' | '6.18'): Superblock =>
    makeSuperblock({ blockSize: BS, totalBlocks: 1024, pageModel: 'linux', linuxKernel });

  it('defaults to 6.12 with no feature bit; 6.18 sets the rocompat bit; both round-trip', () => {
    expect(LINUX_KERNELS).toEqual(['6.12', '6.18']);
    const a = makeSuperblock({ blockSize: BS, totalBlocks: 1024, pageModel: 'linux' });
    expect(a.linuxKernel).toBe('6.12');
    expect(a.rocompat).toBe(0);
    const b = makeSuperblock({ blockSize: BS, totalBlocks: 1024, pageModel: 'linux', linuxKernel: '6.18' });
    expect(b.rocompat).toBe(FEATURES.rocompat.linuxKernel);
    for (const sb of [a, b]) {
      const back = decodeSuperblock(encodeSuperblock(sb, BS, 0), 0);
      expect(back.linuxKernel).toBe(sb.linuxKernel);
      expect(back.rocompat).toBe(sb.rocompat);
    }
    // A known bit: this daxtool may write it.
    expect(() => assertWritable(b)).not.toThrow();
    // The word: 0 for 6.12 (what images made before it existed hold), 1 for 6.18.
    expect(encodeSuperblock(a, BS, 0).readUInt32LE(SB_PAYLOAD_END - 4)).toBe(0);
    expect(encodeSuperblock(b, BS, 1).readUInt32LE(SB_PAYLOAD_END - 4)).toBe(1);
  });

  it('refuses a version other than 6.12 under another model, at make and at encode', () => {
    expect(thrown(() => makeSuperblock({ blockSize: BS, totalBlocks: 1024, pageModel: 'proxy', linuxKernel: '6.18' })).code).toBe('EINVAL');
    expect(thrown(() => encodeSuperblock({ ...sample(), linuxKernel: '6.18' }, BS, 0)).code).toBe('EINVAL');
    // The bit and the word must agree.
    expect(thrown(() => encodeSuperblock({ ...linux('6.18'), rocompat: 0 }, BS, 0)).code).toBe('EINVAL');
  });

  it('a slot whose word and bit or model disagree is corrupt (ECORRUPT), and pick falls back to the other slot', () => {
    const reseal = (buf: Buffer, slot: number, gen: number, edit: (b: Buffer) => void): Buffer => {
      edit(buf);
      sealBlock(buf, slot, gen);
      return buf;
    };
    const good = encodeSuperblock(linux('6.18'), BS, 0);
    const cases: [string, (b: Buffer) => void, RegExp][] = [
      ['bit cleared', (b) => b.writeUInt32LE(0, 56), /rocompat linuxKernel bit is clear/],
      ['unknown version', (b) => b.writeUInt32LE(7, SB_PAYLOAD_END - 4), /Linux version 7 is not one of/],
      ['proxy model', (b) => b.writeUInt32LE(PAGE_MODEL_NAMES.indexOf('proxy'), 68), /page model is 'proxy'/],
    ];
    for (const [, edit, msg] of cases) {
      const bad = reseal(Buffer.from(good), 0, 9, edit);
      const e = thrown(() => decodeSuperblock(bad, 0));
      expect(e.code).toBe('ECORRUPT');
      expect(e.message).toMatch(msg);
      const older = encodeSuperblock({ ...linux('6.18'), generation: 3 }, BS, 1);
      const pick = pickSuperblock((s) => (s === 0 ? bad : older));
      expect(pick.slot).toBe(1);
      expect(pick.sb.linuxKernel).toBe('6.18');
      expect(pick.problems.join(' ')).toMatch(msg);
    }
    // A 6.12 image with the bit set is corrupt too.
    const set = reseal(encodeSuperblock(linux('6.12'), BS, 0), 0, 9, (b) => b.writeUInt32LE(FEATURES.rocompat.linuxKernel, 56));
    expect(thrown(() => decodeSuperblock(set, 0)).message).toMatch(/bit is set but the Linux version is 6.12/);
  });
});
