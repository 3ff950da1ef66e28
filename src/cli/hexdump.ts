/**
 * `hexdump -C` layout, streamed: 16 bytes a line as an 8-digit hex offset,
 * two groups of eight hex bytes, and the printable characters between bars;
 * a run of lines identical to the one before is squeezed into one `*`; a last
 * line gives the offset just past the end. Offsets are absolute (as with
 * hexdump -s), so a dump from --offset N starts at N.
 */
export class HexDump {
  private pending: Buffer = Buffer.alloc(0);
  private last: Buffer | null = null;
  private squeezing = false;

  constructor(private pos: number) {}

  /** The lines of whole 16-byte rows now available. */
  push(data: Buffer): string {
    this.pending = this.pending.length ? Buffer.concat([this.pending, data]) : data;
    const whole = this.pending.length - (this.pending.length % 16);
    const out = this.rows(this.pending.subarray(0, whole));
    this.pending = Buffer.from(this.pending.subarray(whole));
    return out;
  }

  /** The last partial row and the closing offset. */
  end(): string {
    const out = this.rows(this.pending);
    this.pending = Buffer.alloc(0);
    return `${out}${hex8(this.pos)}\n`;
  }

  private rows(buf: Buffer): string {
    let out = '';
    for (let o = 0; o < buf.length; o += 16) {
      const row = buf.subarray(o, Math.min(o + 16, buf.length));
      if (row.length === 16 && this.last && row.equals(this.last)) {
        if (!this.squeezing) out += '*\n';
        this.squeezing = true;
      } else {
        this.squeezing = false;
        out += line(this.pos, row);
      }
      this.last = Buffer.from(row);
      this.pos += row.length;
    }
    return out;
  }
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function line(pos: number, row: Buffer): string {
  let hex = '';
  let text = '';
  for (let i = 0; i < 16; i++) {
    if (i === 8) hex += ' ';
    hex += i < row.length ? ` ${row[i]!.toString(16).padStart(2, '0')}` : '   ';
    if (i < row.length) text += row[i]! >= 0x20 && row[i]! < 0x7f ? String.fromCharCode(row[i]!) : '.';
  }
  return `${hex8(pos)} ${hex}  |${text}|\n`;
}
