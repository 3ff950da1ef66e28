/**
 * Splits one shell-script line into words the way a POSIX shell would for the
 * subset daxtool needs: '…' is literal, "…" honours \" \\ \$ \` escapes,
 * a backslash outside quotes escapes the next character, and `#` at the start
 * of a word begins a comment. No expansion of any kind happens, so a request
 * file means exactly what it says.
 */
import { usage } from './errors.js';

export function shellwords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  // A word exists once any character or quote pair was seen, so '' yields "".
  let inWord = false;
  let i = 0;
  const n = line.length;
  while (i < n) {
    const c = line[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      if (inWord) {
        words.push(cur);
        cur = '';
        inWord = false;
      }
      i++;
    } else if (c === '#' && !inWord) {
      break;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw usage('unterminated single quote');
      cur += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const d = line[i]!;
        if (d === '"') {
          closed = true;
          i++;
          break;
        }
        if (d === '\\' && i + 1 < n && '"\\$`'.includes(line[i + 1]!)) {
          cur += line[i + 1];
          i += 2;
        } else {
          cur += d;
          i++;
        }
      }
      if (!closed) throw usage('unterminated double quote');
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 >= n) throw usage('trailing backslash');
      cur += line[i + 1];
      inWord = true;
      i += 2;
    } else {
      cur += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(cur);
  return words;
}
