/**
 * Long copies between a host file and a file of the image, with the host side
 * on a worker thread so that it overlaps the image side: put's source read one
 * chunk ahead (io/hostread.ts), get's output written one chunk behind
 * (io/hostwrite.ts). The image reads and writes stay on the calling thread, in
 * the order a plain loop makes them (the same crash points).
 */
import { fstatSync } from 'node:fs';
import type { InodeRec } from '../format/records.js';
import { HostSink } from '../io/hostwrite.js';
import type { FsTx } from './fstx.js';
import { dataRuns, finishSparse } from './sparse.js';

/**
 * Bytes a put reads from the host and writes per chunk (and a long get reads
 * and writes out). Its writes go with O_DIRECT (BlockDevice.streamBuffer), one
 * at a time: each waits for the device, so fewer, longer ones keep the device
 * busier (1 GiB on this project's 2-core VM: 8 MiB chunks 2.4-3.1 s, 32 MiB
 * 1.6-1.9 s, interleaved).
 */
export const HOST_CHUNK_BYTES = 32 << 20;

/**
 * The whole of a long file out to a host file the caller created or emptied,
 * through a HostSink (io/hostwrite.ts): each chunk is read from the image into
 * the sink's buffer while the one before is written around the page cache;
 * blocks of zeros stay holes, as writeSparse leaves them. Null (nothing
 * written) where no sink is to be had: the caller writes on its own.
 */
export function streamOut(fx: FsTx, inode: InodeRec, fd: number): number | null {
  const sink = HostSink.open(fd, Math.max(1, Math.floor(HOST_CHUNK_BYTES / fx.bs)) * fx.bs);
  if (!sink) return null;
  const bs = fx.bs;
  try {
    for (let off = 0; off < inode.size;) {
      const buf = sink.buffer();
      const len = Math.min(buf.length, inode.size - off);
      const blocks = Math.ceil(len / bs);
      fx.readBlocks(inode, off / bs, blocks, buf, 0);
      const whole = Math.floor(len / bs);
      const runs: [number, number][] = dataRuns(buf, whole, bs).map(([s, n]) => [s * bs, n * bs]);
      if (len > whole * bs) runs.push([whole * bs, len - whole * bs]);
      sink.submit(buf, off, runs);
      off += len;
    }
    sink.finish();
  } finally {
    sink.close();
  }
  finishSparse(fd, inode.size);
  return inode.size;
}

/** A host fd's size if it is a regular file (which can be read ahead: hostread.ts), else null. */
export function hostFileSize(fd: number): number | null {
  try {
    const st = fstatSync(fd);
    return st.isFile() ? st.size : null;
  } catch {
    return null;
  }
}
