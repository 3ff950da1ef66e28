import { err } from '../format/errors.js';
import { NAME_MAX, nameProblem } from '../format/records.js';

/**
 * Paths inside the image: '/'-separated, absolute or relative to the root;
 * empty components and '.' are skipped, '..' climbs (never above '/').
 * Returns the components as byte strings.
 */
export function splitPath(path: string): Buffer[] {
  if (typeof path !== 'string' || path.length === 0) throw err('EINVAL', 'empty path', '""');
  if (path.includes('\0')) throw err('EINVAL', 'path contains a NUL byte', JSON.stringify(path));
  const out: Buffer[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      out.pop();
      continue;
    }
    const b = Buffer.from(part, 'utf8');
    if (b.length > NAME_MAX) throw err('ENAMETOOLONG', `name longer than ${NAME_MAX} bytes`, path);
    out.push(b);
  }
  return out;
}

/** Validate one name for a new directory entry. */
export function checkNewName(name: Buffer, path: string): void {
  const p = nameProblem(name);
  if (!p) return;
  throw err(name.length > NAME_MAX ? 'ENAMETOOLONG' : 'EINVAL', `invalid name: ${p}`, path);
}

export function joinPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

export function normalizePath(path: string): string {
  return (
    '/' +
    splitPath(path)
      .map((b) => b.toString('utf8'))
      .join('/')
  );
}
