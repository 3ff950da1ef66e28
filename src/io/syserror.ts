/**
 * Host errors as DaxErrors: a failed open, read, write or flush of the image
 * says what was being done, on which object, with the errno-style code and a
 * hint true for it (a full host file system, a missing directory, …).
 */
import { DaxError, err, type ErrCode } from '../format/errors.js';

export /** Map a Node fs error to a DaxError; `what` says what was being done. */
function sysError(e: unknown, what: string, object: string, fallback: ErrCode = 'EIO'): DaxError {
  if (e instanceof DaxError) return e;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  const detail = (e as Error | null)?.message ?? String(e);
  switch (code) {
    case 'ENOENT':
      return err('ENOENT', `${what}: no such file`, object, 'create an image with `daxtool mkfs IMAGE --size SIZE`');
    case 'EISDIR':
      return err('EISDIR', `${what}: is a directory`, object);
    case 'ENOTDIR':
      return err('ENOTDIR', `${what}: a component of the path is not a directory`, object);
    case 'EEXIST':
      return err('EEXIST', `${what}: file exists`, object, 'pass --force to replace it');
    case 'EACCES':
    case 'EPERM':
      return err('EPERM', `${what}: permission denied`, object);
    case 'EROFS':
      return err('EPERM', `${what}: read-only file system`, object);
    case 'ENOSPC':
    case 'EDQUOT':
      // The cause leads the line (`daxtool: CMD: host filesystem full: ...`); what failed follows.
      return err(
        'ENOSPC',
        `host filesystem full: ${what}`,
        undefined,
        'the image is sparse and needs host space for every block it writes: free space on the host file system and run the command again',
      );
    case 'EFBIG':
      return err('EFBIG', `${what}: file too large for the host file system`, object);
    default:
      return err(fallback, `${what}: ${detail}`, object);
  }
}
