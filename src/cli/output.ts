/**
 * Human and machine output. JSON is one object per command on stdout; tables
 * are sized to the terminal (never wrapped when not a terminal) and coloured only
 * when the caller says stdout is a colour-capable TTY.
 */
import { createRequire } from 'node:module';
import type TableType from 'cli-table3';

/** cli-table3 is loaded on the first table: commands that print none (info, --json) do not pay for it. */
let TableCtor: typeof TableType | undefined;
function tableCtor(): typeof TableType {
  TableCtor ??= createRequire(import.meta.url)('cli-table3') as typeof TableType;
  return TableCtor;
}

export interface Style {
  /** ANSI colour allowed (stdout is a TTY and NO_COLOR is unset). */
  color: boolean;
  /** Width tables must fit in; Infinity when no terminal sets one. */
  columns: number;
}

export function json(obj: unknown): string {
  return `${JSON.stringify(obj)}\n`;
}

const SIZE_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** 4096 → "4.0 KiB", 1099511627776 → "1.0 TiB", 512 → "512 B". */
export function humanSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 1024) return `${bytes} B`;
  let v = bytes / 1024;
  let u = 0;
  // Compare after rounding so 1048575 reads "1.0 MiB", never "1024.0 KiB".
  while (u < SIZE_UNITS.length - 1 && Number(v.toFixed(1)) >= 1024) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${SIZE_UNITS[u]}`;
}

/** Pluralised count: plural(1, 'block') → "1 block". */
export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

const ANSI: Record<string, [number, number]> = {
  bold: [1, 22],
  dim: [2, 22],
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  cyan: [36, 39],
};

export function paint(style: Style, name: keyof typeof ANSI, s: string): string {
  if (!style.color) return s;
  const [on, off] = ANSI[name]!;
  return `\u001b[${on}m${s}\u001b[${off}m`;
}

export type Align = 'left' | 'right';

export interface TableOptions {
  align?: Align[];
  /** Columns that may be narrowed and wrapped first when the table is too wide. */
  flex?: number[];
}

/**
 * A bordered table that fits `style.columns`. Cells must be plain text: the
 * table does its own colouring. Columns are shrunk (flex ones
 * first, then the widest) and their cells wrapped between words rather than
 * letting the terminal wrap the whole row; a column is never made narrower
 * than its longest word, so `262145 anon` may become two lines but never
 * `an` / `on`.
 */
export function table(style: Style, head: string[], rows: (string | number)[][], opts: TableOptions = {}): string {
  const cells = rows.map((r) => r.map((c) => String(c)));
  const ncol = head.length;
  // cli-table3 widths include one space of padding on each side.
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => longestLine(r[i] ?? ''))) + 2);
  const limit = Math.max(40, style.columns); // Infinity: no terminal, no wrapping
  const total = (): number => widths.reduce((a, b) => a + b, 0) + ncol + 1;
  // A column's floor: its longest word (head included), plus padding.
  const floor = head.map((h, i) => Math.max(longestWord(h), ...cells.map((r) => longestWord(r[i] ?? ''))) + 2);
  const flex = opts.flex ?? [];
  const room = (i: number): boolean => widths[i]! > floor[i]!;
  while (total() > limit) {
    let pick = -1;
    for (const i of flex) if (room(i) && (pick < 0 || widths[i]! > widths[pick]!)) pick = i;
    if (pick < 0) {
      for (let i = 0; i < ncol; i++) if (room(i) && (pick < 0 || widths[i]! > widths[pick]!)) pick = i;
    }
    if (pick < 0) break;
    widths[pick]!--;
  }
  const Table = tableCtor();
  const t = new Table({
    head,
    colWidths: widths,
    colAligns: opts.align ?? head.map(() => 'left' as const),
    wordWrap: true,
    wrapOnWordBoundary: true,
    // Colour is applied by cli-table3 after wrapping, so escape codes are never split;
    // with no styles it never loads its colour module (which probes process.stdout).
    style: { head: style.color ? ['bold'] : [], border: [], compact: true },
  });
  for (const r of cells) t.push(r);
  return `${t.toString()}\n`;
}

/** A two-column key/value table, for single objects such as info and stat. */
/**
 * Field/value pairs as aligned `field: value` lines, like xfs_info or stat(1)
 * print them: easy to read and to grep, and no table library to load.
 */
export function kvTable(style: Style, pairs: [string, string | number][]): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${paint(style, 'bold', `${k}:`)}${' '.repeat(w - k.length + 1)}${String(v)}`).join('\n') + '\n';
}

function longestWord(s: string): number {
  let m = 0;
  for (const w of s.split(/\s+/)) m = Math.max(m, w.length);
  return m;
}

function longestLine(s: string): number {
  let m = 0;
  for (const l of s.split('\n')) m = Math.max(m, l.length);
  return m;
}

/**
 * `  label:  text` wrapped at word boundaries to `width` columns, continuation
 * lines indented under the text: fault traces and similar labelled lines.
 */
export function labelled(label: string, text: string, width = 80): string {
  const head = `  ${`${label}:`.padEnd(8)}`;
  const room = Math.max(20, width - head.length);
  const lines: string[] = [];
  let cur = '';
  for (const word of text.split(' ')) {
    if (cur && cur.length + 1 + word.length > room) {
      lines.push(cur);
      cur = word;
    } else cur = cur ? `${cur} ${word}` : word;
  }
  lines.push(cur);
  return lines.map((l, i) => (i === 0 ? head : ' '.repeat(head.length)) + l).join('\n');
}
