import { DaxError, err } from '../format/errors.js';
import { encodeSuperblock, type Superblock, type SuperblockSlot } from '../format/superblock.js';
import type { BlockDevice } from '../io/device.js';

/**
 * What to do when the superblock write of a commit, or the flush after it,
 * fails (an EIO from the disk, ENOSPC from the host file system).
 *
 * The new superblock may or may not be on the disk: a failed fdatasync says
 * only that some write since the last one may be lost, and the kernel may
 * already have marked the page clean, so retrying the flush proves nothing
 * (PostgreSQL's "fsyncgate", 2018: after a failed fsync, a second one can
 * succeed without the data ever reaching the disk). Meanwhile every reader,
 * this process included, sees the new superblock in the page cache. Telling
 * the user "failed" while the image shows the command's result would be a lie.
 *
 * So the commit is rolled back: the slot just written is rewritten with the
 * committed superblock (the previous state, encoded for that slot) and
 * flushed. The rewrite never touches the other slot, the only copy known to
 * be good; torn or lost, it leaves that slot to win, and complete, both slots
 * hold the previous state. If that rewrite and its flush succeed, the disk
 * holds the state before the command, and the error says so. If they fail as
 * well, the disk holds whichever of the two superblocks last reached it; the
 * error names both generations, and the device is fenced: this process writes
 * nothing more to it, since a later commit could build on the wrong one.
 */
export function commitFailed(
  dev: BlockDevice,
  committed: Superblock,
  slot: SuperblockSlot,
  attempted: Superblock,
  cause: unknown,
): DaxError {
  if (!(cause instanceof DaxError)) return cause as DaxError; // a bug, not an I/O failure: let it surface as one
  const before = committed.generation;
  const after = attempted.generation;
  // Generation 0 is mkfs's first commit: there is no state before it, and
  // rolling back leaves the slot zeroed (the file then holds no filesystem).
  const previous = before === 0 ? Buffer.alloc(committed.blockSize) : encodeSuperblock(committed, committed.blockSize, slot);
  try {
    dev.write(slot, previous);
    dev.flush();
  } catch (again) {
    const why = again instanceof DaxError ? again.message : String(again);
    const e = err(
      cause.code,
      `${cause.message}; rolling the commit back failed too (${why}): the image holds either the state before this command (generation ${before}) or its result (generation ${after}), whichever superblock reached the disk`,
      cause.object,
      'do not write to this image until the device works again; then `daxtool info` shows the generation and `daxtool verify` checks the image',
    );
    dev.fence(
      err('EIO', `an earlier commit to ${dev.path} failed and could not be rolled back; nothing more is written in this process`, dev.path),
    );
    return e;
  }
  return err(
    cause.code,
    before === 0
      ? `${cause.message}; the new filesystem was rolled back: the file holds no filesystem`
      : `${cause.message}; the commit was rolled back: the image holds the state before this command (generation ${before})`,
    cause.object,
    cause.hint ?? 'the disk reported an error: check it before writing to this image again',
  );
}
