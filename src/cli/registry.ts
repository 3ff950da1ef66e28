/**
 * The command table: every subcommand's name, arguments and options, declared
 * as data so that the one-shot parser, the shell's per-line parser, help and
 * tab completion all come from one place. A leaf: it imports no command.
 * Implementations live in one module per group under ./commands, loaded by
 * loaders.ts only when a command of that group runs, so `daxtool --version`
 * and `--help` load no filesystem code, prompts, spinners or tables.
 *
 * Adding the DAX commands (mmap, munmap, fault, ps, exit, ptdump, pages, pin,
 * unpin, poison) means: a `dax` entry in GROUPS (loaders.ts) pointing at
 * ./commands/dax.js exporting `commands`, and their specs appended to COMMANDS;
 * `demo` and `compare` take no image (`image: false`) and go in a `lab` group.
 */
import { DEFAULT_LINUX_KERNEL, LINUX_KERNELS, PAGE_MODELS } from '../fs/types.js';
import { DEFAULT_EXIT, FSCK_EXIT, type ExitPolicy } from './errors.js';
import { parseByte, parseCount, parseSize } from './parse.js';

/** Turns one word into a value, or throws a usage error; `what` names the word for the message. */
export type Parser = (text: string, what: string) => unknown;

export interface ArgSpec {
  name: string;
  desc: string;
  optional?: boolean;
  parse?: Parser;
}

export interface OptSpec {
  /** Commander flags, e.g. `-l, --long` or `--offset <N>`. */
  flags: string;
  desc: string;
  parse?: Parser;
  required?: boolean;
  /** Attribute names (camelCase) this option cannot be combined with. */
  conflicts?: string[];
  choices?: readonly string[];
}

export type GroupName =
  | 'image'
  | 'namespace'
  | 'data'
  | 'sharing'
  | 'maps'
  | 'check'
  | 'inspect'
  | 'shell'
  | 'completion'
  | 'dax'
  | 'lab'
  | 'report'
  | 'scenario';

export interface CommandSpec {
  name: string;
  group: GroupName;
  summary: string;
  /** Takes IMAGE as its first argument (implied inside shell). */
  image: boolean;
  args: ArgSpec[];
  options: OptSpec[];
  exit?: ExitPolicy;
  /** Available as a shell line (default true). */
  inShell?: boolean;
  /** Extra help text shown after the options. */
  more?: string;
}

const size: Parser = (t, w) => parseSize(t, w);
const count: Parser = (t, w) => parseCount(t, w);
const block: Parser = (t, w) => parseCount(t, w);
const byte: Parser = (t, w) => parseByte(t, w);

const SIZES_HELP = 'Sizes and offsets: bytes, K/M/G/T suffixes (powers of 1024, e.g. 4K, 1MiB) or 0x hex.';

export const COMMANDS: CommandSpec[] = [
  {
    name: 'mkfs',
    group: 'image',
    summary: 'create a filesystem image',
    image: true,
    args: [],
    options: [
      { flags: '--size <SIZE>', desc: 'image size', parse: size, required: true },
      { flags: '--block-size <N>', desc: 'block size in bytes (default 4096)', parse: size },
      { flags: '--label <L>', desc: 'filesystem label' },
      { flags: '--page-model <M>', desc: 'page descriptor model (default proxy)', choices: PAGE_MODELS },
      {
        flags: '--linux <V>',
        desc: `the Linux the linux page model follows: ${LINUX_KERNELS.join(' or ')} (default ${DEFAULT_LINUX_KERNEL}); only with --page-model linux`,
        choices: LINUX_KERNELS,
      },
      { flags: '--format-version <V>', desc: 'on-disk format version: 2 (default) or 1, for older daxtools', parse: count },
      { flags: '--force', desc: 'overwrite an existing image' },
      { flags: '--dry-run', desc: 'print the geometry, write nothing' },
      { flags: '-q, --quiet', desc: 'no progress or summary' },
    ],
    more: SIZES_HELP,
  },
  { name: 'info', group: 'image', summary: 'superblock and space summary', image: true, args: [], options: [] },
  {
    name: 'ls',
    group: 'namespace',
    summary: 'list a directory',
    image: true,
    args: [{ name: 'path', desc: 'directory (default /)', optional: true }],
    options: [{ flags: '-l, --long', desc: 'type, inode and size of each entry' }],
  },
  {
    name: 'stat',
    group: 'namespace',
    summary: 'show one file or directory',
    image: true,
    args: [{ name: 'path', desc: 'path inside the image' }],
    options: [],
  },
  {
    name: 'mkdir',
    group: 'namespace',
    summary: 'create a directory',
    image: true,
    args: [{ name: 'path', desc: 'directory to create' }],
    options: [{ flags: '-p, --parents', desc: 'create missing parents; an existing directory is not an error' }],
  },
  {
    name: 'put',
    group: 'data',
    summary: 'copy a host file (or stdin) in',
    image: true,
    args: [
      { name: 'hostfile', desc: 'host file, or - for stdin' },
      { name: 'path', desc: 'destination inside the image' },
    ],
    options: [{ flags: '-q, --quiet', desc: 'no progress spinner' }],
  },
  {
    name: 'get',
    group: 'data',
    summary: 'copy a file or a directory tree out',
    image: true,
    args: [
      { name: 'path', desc: 'file or directory inside the image' },
      { name: 'hostfile', desc: 'host file, or - for stdout; for a directory, the host directory to copy into' },
    ],
    options: [],
  },
  {
    name: 'cat',
    group: 'data',
    summary: 'write a file, or a range, to stdout',
    image: true,
    args: [{ name: 'path', desc: 'file inside the image' }],
    options: [
      { flags: '--offset <N>', desc: 'first byte (default 0)', parse: size },
      { flags: '--length <N>', desc: 'bytes (default to EOF)', parse: size },
      { flags: '--hex', desc: 'a hex dump in the layout of hexdump -C (offsets are file offsets)' },
    ],
    more: `A range past EOF stops at EOF, as pread does. ${SIZES_HELP}`,
  },
  {
    name: 'write',
    group: 'data',
    summary: 'write a byte pattern or host data',
    image: true,
    args: [{ name: 'path', desc: 'file inside the image' }],
    options: [
      { flags: '--offset <N>', desc: 'byte offset in the file', parse: size, required: true },
      { flags: '--length <N>', desc: 'bytes to write (with --from: default the whole host file)', parse: size },
      { flags: '--pattern <BYTE>', desc: 'fill with this byte (0..255 or 0x..)', parse: byte, conflicts: ['from'] },
      { flags: '--from <HOSTFILE>', desc: 'take the data from a host file' },
    ],
    more: `Creates the file if missing; a gap before OFFSET stays a hole. ${SIZES_HELP}`,
  },
  {
    name: 'truncate',
    group: 'data',
    summary: "set a file's size",
    image: true,
    args: [
      { name: 'path', desc: 'file inside the image' },
      { name: 'size', desc: 'new size', parse: size },
    ],
    options: [],
    more: `Shrinking frees blocks past the end; growing adds a hole. ${SIZES_HELP}`,
  },
  {
    name: 'punch',
    group: 'data',
    summary: 'make a hole in a byte range',
    image: true,
    args: [{ name: 'path', desc: 'file inside the image' }],
    options: [
      { flags: '--offset <N>', desc: 'byte offset', parse: size, required: true },
      { flags: '--length <N>', desc: 'bytes', parse: size, required: true },
    ],
    more: SIZES_HELP,
  },
  {
    name: 'extsize',
    group: 'data',
    summary: "a file's extent-size hints, COW fork",
    image: true,
    args: [{ name: 'path', desc: 'file inside the image' }],
    options: [
      { flags: '--extsize <N>', desc: 'extent-size hint (bytes, a multiple of the block size; 0 clears)', parse: size },
      { flags: '--cowextsize <N>', desc: 'copy-on-write extent-size hint (bytes, a multiple of the block size; 0 clears)', parse: size },
    ],
    more: `Like xfs_io -c 'extsize N' / 'cowextsize N'. Under the linux page model a file with hints copies on write through a copy-on-write fork: the copy-on-write hint in force is the larger of the two (xfs_get_cowextsz_hint), every copy-on-write stages that much of the file, aligned, and later writes anywhere in the staged range move to the staged blocks. Without options, shows the hints and the staged extents. ${SIZES_HELP}`,
  },
  {
    name: 'rm',
    group: 'namespace',
    summary: 'remove a file or directory',
    image: true,
    args: [{ name: 'path', desc: 'path inside the image' }],
    options: [{ flags: '-r, --recursive', desc: 'remove a directory and its contents' }],
  },
  {
    name: 'mv',
    group: 'namespace',
    summary: 'rename or move',
    image: true,
    args: [
      { name: 'src', desc: 'existing path' },
      { name: 'dst', desc: 'new path' },
    ],
    options: [],
  },
  {
    name: 'reflink',
    group: 'sharing',
    summary: "share SRC's blocks into DST",
    image: true,
    args: [
      { name: 'src', desc: 'source file' },
      { name: 'dst', desc: 'destination file' },
    ],
    options: [
      { flags: '--src-offset <N>', desc: 'byte offset in SRC (block aligned)', parse: size },
      { flags: '--dst-offset <N>', desc: 'byte offset in DST (block aligned)', parse: size },
      { flags: '--length <N>', desc: "bytes; 0 = to SRC's EOF", parse: size },
    ],
    more: `DST is created if missing. Without range options the whole file is cloned (like FICLONE); with any of them a range is (like FICLONERANGE). ${SIZES_HELP}`,
  },
  {
    name: 'dedupe',
    group: 'sharing',
    summary: 'share identical ranges of two files',
    image: true,
    args: [
      { name: 'src', desc: 'source file' },
      { name: 'dst', desc: 'destination file' },
    ],
    options: [
      { flags: '--src-offset <N>', desc: 'byte offset in SRC', parse: size, required: true },
      { flags: '--dst-offset <N>', desc: 'byte offset in DST', parse: size, required: true },
      { flags: '--length <N>', desc: "bytes; 0 = to SRC's EOF", parse: size, required: true },
    ],
    more: `Ranges that differ change nothing and report status "differs" (like FIDEDUPERANGE). ${SIZES_HELP}`,
  },
  {
    name: 'unshare',
    group: 'sharing',
    summary: "make a file's shared blocks private",
    image: true,
    args: [{ name: 'path', desc: 'file inside the image' }],
    options: [
      { flags: '--offset <N>', desc: 'byte offset (default 0)', parse: size },
      { flags: '--length <N>', desc: 'bytes (default to EOF)', parse: size },
    ],
    more: SIZES_HELP,
  },
  {
    name: 'fiemap',
    group: 'maps',
    summary: "a file's extents and shared flags",
    image: true,
    args: [{ name: 'path', desc: 'file inside the image' }],
    options: [{ flags: '-v, --verbose', desc: "xfs_io's fiemap -v table: 512-byte units, holes, FLAGS (0x2000 shared, 0x1 last)" }],
  },
  {
    name: 'fsmap',
    group: 'maps',
    summary: 'physical blocks and who owns them',
    image: true,
    args: [],
    options: [
      { flags: '--start <BLOCK>', desc: 'first block', parse: block },
      { flags: '--end <BLOCK>', desc: 'last block', parse: block },
      { flags: '-m, --machine', desc: "CSV as xfs_io's fsmap -m: EXT,MAJOR,MINOR,PSTART,PEND,OWNER,OSTART,OEND,LENGTH in 512-byte units" },
    ],
  },
  {
    name: 'du',
    group: 'maps',
    summary: 'space used, shared and exclusive',
    image: true,
    args: [{ name: 'path', desc: 'file or directory (default /)', optional: true }],
    options: [{ flags: '-s, --summarize', desc: 'only PATH itself, not every entry below it' }],
    more: 'Like btrfs filesystem du and compsize: counts blocks, not sizes (holes are free). Total counts a block once per reference; Exclusive, Shared and Frees count it once. Frees is what rm -r PATH would give back.',
  },
  {
    name: 'verify',
    group: 'check',
    summary: 'check (and repair) every invariant',
    image: true,
    args: [],
    options: [
      { flags: '--repair', desc: 'fix what can be fixed (asks on a terminal)' },
      { flags: '-y, --yes', desc: 'repair, answering yes to every question (e2fsck -y)' },
      { flags: '-n, --no', desc: 'check only: open read-only, answer no (e2fsck -n)' },
      { flags: '-p, --preen', desc: 'repair what is safe without asking, report the rest (e2fsck -p)' },
      { flags: '-f, --force', desc: 'accepted for e2fsck -f: verify always checks everything' },
      { flags: '--all', desc: 'list every finding, not the first few of each check' },
      { flags: '-q, --quiet', desc: 'no progress spinner' },
    ],
    exit: FSCK_EXIT,
    more: 'Exit status as fsck(8): 0 clean, 1 errors repaired, 4 errors left, 8 operational error, 16 usage error, 32 cancelled. Only one of -p, -n and -y may be given.',
  },
  {
    name: 'upgrade',
    group: 'check',
    summary: 'upgrade to the newest on-disk format',
    image: true,
    args: [],
    options: [],
    more: "Version 1 -> 2 keeps small files' extents in their inodes. One transaction: a crash leaves the old image or the new one. The filesystem must verify clean first. No other command changes an image's version.",
  },
  {
    name: 'inspect',
    group: 'inspect',
    summary: 'decode the superblock or any block',
    image: true,
    args: [],
    options: [
      { flags: '--superblock', desc: 'both superblock slots, every field, which is in use', conflicts: ['block'] },
      { flags: '--block <N>', desc: 'block N: its type, header, every record or entry, checksum good or bad', parse: block },
    ],
    more: "Like xfs_db's `sb 0` + `print` and `fsb N` + `print`, or debugfs's `stats` and `bd`. Reads blocks raw: works on images verify calls damaged.",
  },
  {
    name: 'shell',
    group: 'shell',
    summary: 'run many commands on one image',
    image: true,
    args: [],
    options: [
      { flags: '-f, --file <FILE>', desc: 'request file, one command per line (- = stdin)' },
      { flags: '--continue', desc: 'run on after a failing line; exit with the first failure' },
    ],
    inShell: false,
    more: 'Interactive on a terminal; otherwise reads -f FILE or stdin. Lines are commands without IMAGE; blank lines and # comments are skipped; quote with \'…\', "…" or \\.',
  },
  {
    name: 'completion',
    group: 'completion',
    summary: 'print a shell completion script',
    image: false,
    args: [{ name: 'shell', desc: 'bash or zsh' }],
    options: [],
    inShell: false,
    more: 'bash: eval "$(daxtool completion bash)"   zsh: eval "$(daxtool completion zsh)" (after compinit)',
  },
];

COMMANDS.push(...DAX_COMMANDS(), REPORT_COMMAND());

export function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

export function exitPolicy(spec: CommandSpec | undefined): ExitPolicy {
  return spec?.exit ?? DEFAULT_EXIT;
}

/** The emulated DAX machine's commands (issue 4), and the lab (demo, compare), which make their own images. */
function DAX_COMMANDS(): CommandSpec[] {
  const pid = (required: boolean, desc = 'process id'): OptSpec => ({ flags: '--pid <PID>', desc, parse: count, required });
  const addr = (required: boolean): OptSpec => ({
    flags: '--addr <A>',
    desc: 'virtual address (decimal or 0x hex)',
    parse: count,
    required,
  });
  const ADDR_HELP = 'Addresses and frame numbers: decimal or 0x hex. ' + SIZES_HELP;
  return [
    {
      name: 'mmap',
      group: 'dax',
      summary: 'map a file into a process',
      image: true,
      args: [{ name: 'path', desc: 'file inside the image' }],
      options: [
        pid(true),
        { flags: '--offset <N>', desc: 'file offset (page aligned, default 0)', parse: size },
        { flags: '--length <N>', desc: 'bytes to map (default: to EOF)', parse: size },
        { flags: '--addr <A>', desc: 'address (default: a free 2 MiB-aligned one)', parse: count },
        { flags: '--private', desc: 'MAP_PRIVATE: writes make anonymous copies' },
        { flags: '--read-only', desc: 'map without write permission' },
      ],
      more: ADDR_HELP,
    },
    {
      name: 'munmap',
      group: 'dax',
      summary: 'unmap a range of a process',
      image: true,
      args: [],
      options: [pid(true), addr(true), { flags: '--length <N>', desc: 'bytes (default: to the end of the mapping)', parse: size }],
      more: ADDR_HELP,
    },
    {
      name: 'fault',
      group: 'dax',
      summary: 'take page faults',
      image: true,
      args: [{ name: 'path', desc: 'file form: fault the file at --offset', optional: true }],
      options: [
        pid(false, 'process (file form: default any mapper, or a new one)'),
        { flags: '--addr <A>', desc: 'process form: the faulting address', parse: count },
        { flags: '--offset <N>', desc: 'file form: byte offset in PATH', parse: size },
        { flags: '--length <N>', desc: 'fault every page of this many bytes', parse: size },
        { flags: '--write', desc: 'write fault (default read)' },
        { flags: '--explain', desc: "one page: the path Linux's fault handler takes (fs/dax.c, XFS), every PMD fallback and its reason" },
      ],
      more: `Process form: fault IMAGE --pid PID --addr A. File form: fault IMAGE PATH --offset N [--pid PID], which maps the file first when no process maps it. ${ADDR_HELP}`,
    },
    { name: 'ps', group: 'dax', summary: 'processes and their mappings', image: true, args: [], options: [] },
    { name: 'exit', group: 'dax', summary: 'tear a process down', image: true, args: [], options: [pid(true)] },
    {
      name: 'ptdump',
      group: 'dax',
      summary: 'dump page tables with (file, index)',
      image: true,
      args: [],
      options: [pid(false, 'one process (default all)')],
    },
    {
      name: 'pages',
      group: 'dax',
      summary: 'page descriptors, reverse maps',
      image: true,
      args: [],
      options: [{ flags: '--pfn <N>', desc: 'one frame: its descriptors and mappers', parse: count }],
    },
    {
      name: 'pin',
      group: 'dax',
      summary: 'pin a mapped page (pin_user_pages)',
      image: true,
      args: [],
      options: [pid(true), addr(true)],
      more: ADDR_HELP,
    },
    { name: 'unpin', group: 'dax', summary: 'release a pin', image: true, args: [], options: [pid(true), addr(true)], more: ADDR_HELP },
    {
      name: 'poison',
      group: 'dax',
      summary: 'memory failure of one block',
      image: true,
      args: [],
      options: [
        { flags: '--block <N>', desc: 'physical block found bad (by hardware or a scrub)', parse: count },
        pid(false, 'with --addr: the process that injects it (MADV_HWPOISON)'),
        { flags: '--addr <A>', desc: 'with --pid: the virtual address injected', parse: count },
        {
          flags: '--explain',
          desc: "with --block: the path of Linux's memory failure: memory_failure → xfs_dax_notify_failure → rmap → mf_dax_kill_procs",
        },
        { flags: '--transient', desc: 'software injection: not kept on the bad-block list' },
      ],
      more: `Two forms: poison IMAGE --block N (found at a block: early-kill processes mapping it get BUS_MCEERR_AO, late-kill ones nothing and keep their mappings) and poison IMAGE --pid PID --addr A (injected by that process, like madvise(MADV_HWPOISON): it gets BUS_MCEERR_AR). By default the poison persists (the pmem bad-block list): faults give SIGBUS and reads EIO until a write of the whole block clears it; --transient forgets it at once. ${ADDR_HELP}`,
    },
    {
      name: 'prctl',
      group: 'dax',
      summary: 'set a memory-failure kill policy',
      image: true,
      args: [],
      options: [
        pid(true),
        { flags: '--mce-kill <P>', desc: 'early or late (every process starts late)', choices: ['early', 'late'], required: true },
      ],
      more: 'Like prctl(PR_MCE_KILL): an early-kill process gets BUS_MCEERR_AO as soon as a page it maps fails; a late-kill one only a BUS_MCEERR_AR when it touches it. Makes the process if it does not exist.',
    },
    {
      name: 'demo',
      group: 'lab',
      summary: 'the W/X/Y/Z rotation, faulted',
      image: false,
      args: [],
      options: [
        { flags: '--page-model <M>', desc: 'page descriptor model (default proxy)', choices: PAGE_MODELS },
        { flags: '--keep <IMAGE>', desc: 'keep the image at this path' },
        { flags: '--force', desc: 'with --keep: replace an existing IMAGE (as mkfs --force)' },
      ],
    },
    {
      name: 'compare',
      group: 'lab',
      summary: 'one workload under every page model',
      image: false,
      args: [],
      options: [
        { flags: '--workload <W>', desc: 'rotation (default) or random', choices: ['rotation', 'random'] },
        { flags: '--seed <S>', desc: 'random seed (default 1)', parse: count },
        { flags: '--files <N>', desc: 'files', parse: count },
        { flags: '--blocks <M>', desc: 'blocks per file', parse: count },
        { flags: '--ops <K>', desc: 'operations (random: faults, reflinks, ...)', parse: count },
        { flags: '--html <FILE>', desc: 'also write the comparison as charts to an HTML page' },
        { flags: '-q, --quiet', desc: 'no progress spinner' },
      ],
    },
    {
      name: 'scenario',
      group: 'scenario',
      inShell: false,
      summary: 'named cases with expectations',
      image: false,
      args: [
        { name: 'action', desc: 'list, show or run' },
        {
          name: 'name',
          desc: 'a built-in scenario, or a scenario FILE (a path, or NAME.dax); run without one runs them all',
          optional: true,
        },
      ],
      options: [
        { flags: '--model <M>', desc: 'page model of the scratch image (default proxy)', choices: PAGE_MODELS, conflicts: ['allModels'] },
        { flags: '--all-models', desc: 'run under every page model; prints a table of scenarios × models' },
        { flags: '--keep <IMAGE>', desc: 'keep the scratch image at this path (one scenario, one model)' },
      ],
      more: 'A scenario is a shell -f file whose "# expect: ..." lines say what the command above them must give; see daxtool(5), SCENARIO FILES. A failed expectation exits 1 and names its line.',
    },
  ];
}

/** report (issue 14): the image as pictures. */
function REPORT_COMMAND(): CommandSpec {
  return {
    name: 'report',
    group: 'report',
    summary: 'pictures of sharing and mappings',
    image: true,
    args: [],
    options: [
      { flags: '--out <FILE>', desc: 'where to write; - = stdout (default IMAGE.html; IMAGE.svg with --svg)' },
      { flags: '--files <PATHS>', desc: 'comma-separated files for the file × index matrix (e.g. /W,/X,/Y,/Z)' },
      { flags: '--svg', desc: 'only the physical map and the matrix, as one SVG document' },
    ],
    more: 'The page is self-contained (no network when viewed): a zoomable map of physical space coloured by refcount, the rotation matrix, the mapping graph with what a write would invalidate, and per-file bytes.',
  };
}
