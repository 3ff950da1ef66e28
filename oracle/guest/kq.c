// daxtool kernel oracle: the guest-side step interpreter (compiled static at setup, run inside QEMU).
//
//   kq VARIANT PMEM_BASE_PFN DIR BADBLOCKS_FILE < script     (script: one step per line, see oracle/scenario.mjs)
//
// Every line of the script is one step. After each step the program prints, one JSON object per line:
//   {"s":N,"r":R[,"v":"0x..."]}                      the step's outcome: R = 0, an errno, -1 for SIGBUS, or -3
//                                                    for a poison step not injected (the zero page)
//                                                    v = first 8-byte word read (touch, pread)
//   {"s":N,"w":K,"c":[[slot,pg,n,pfn],...],"g":[[si_code,lsb,slot,pg],...]}
//                                                    worker K's page-table changes since its last report:
//                                                    pages pg..pg+n-1 of the slot now map pfn, pfn+1, ...
//                                                    (pfn 0: not present); g: SIGBUS signals it received
//   {"zero":PFN}                                     once, first: the zero page's pfn (a read of a hole maps it)
//   {"s":N,"f":I,"e":[[lpg,pblk,npg,shared],...]}    file I's extent map (FIEMAP) when it changed
//   {"s":N,"m":[[pblk,npg,owner],...]}               the space map (FS_IOC_GETFSMAP) apart from file data, when
//                                                    it changed, first allocation group only: owner "free",
//                                                    "cow" (copy-on-write staging), or
//                                                    another XFS owner code as "x<code>"; for reading how XFS
//                                                    allocates (not compared)
// so the host can rebuild the whole state after every step from the changes.
//
// Steps:
//   create F PAGES SEED       create /mnt/fF (copy-on-write extent-size hint 1 block, and in the pmd variant a
//                             2 MiB extent-size hint), write PAGES pages of pattern SEED
//   workers N                 fork N worker processes (each its own address space)
//   clone A APG B BPG NPG     FICLONERANGE of NPG pages of file A at page APG onto file B at page BPG
//   write F PG SEED           pwrite one page of pattern SEED
//   pread F PG                read the first word of a page
//   punch F PG NPG            fallocate(PUNCH_HOLE | KEEP_SIZE) of NPG pages at page PG
//   unshare F PG NPG          fallocate(UNSHARE_RANGE) of NPG pages at page PG
//   fiemap F                  the extent map (reported like every other step's changes)
//   W K early 0|1             prctl(PR_MCE_KILL) late / early for worker K
//   W K map SLOT F s|p        map all of file F shared or private, read-write (2 MiB aligned address)
//   W K touch SLOT PG r|w [SEED]  read, or write the whole page with pattern SEED through the mapping
//   W K poison SLOT PG        madvise(MADV_HWPOISON) of that page, then record its block in
//                             /sys/block/pmem0/badblocks as the machine-check handler would; not done where
//                             the page maps, or would map, the zero page (a hole): the result is then -3
// Pattern SEED: every 8-byte word of file page p is (SEED << 32) | p.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <signal.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <linux/fs.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/fsmap.h>

#ifndef MADV_HWPOISON
#define MADV_HWPOISON 100
#endif
#define PG 4096
#define MAXF 16
#define MAXW 16
#define NSLOT 16

static int step;
static int pmd_variant;
static uint64_t base_pfn;
static char outbuf[1 << 20];
static size_t outlen;

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(outbuf + outlen, sizeof outbuf - outlen, fmt, ap);
    va_end(ap);
    if (n > 0) outlen += (size_t)n;
    if (outlen > sizeof outbuf - 4096) { (void)!write(1, outbuf, outlen); outlen = 0; }
}
static void flush_out(void) { if (outlen) (void)!write(1, outbuf, outlen); outlen = 0; }

static const char *root = "/mnt";
static const char *badblocks = "/sys/block/pmem0/badblocks";
static void path_of(int f, char *p, size_t n) { snprintf(p, n, "%s/f%d", root, f); }
static void fill(uint64_t *w, size_t nwords, uint64_t seed, uint64_t page0) {
    for (size_t i = 0; i < nwords; i++) w[i] = (seed << 32) | (page0 + i / (PG / 8));
}

static void record_badblock_blk(uint64_t blk) {
    int b = open(badblocks, O_WRONLY);
    if (b >= 0) { char t[64]; int n = snprintf(t, sizeof t, "%llu 8\n", (unsigned long long)blk * 8); (void)!write(b, t, n); close(b); }
}

static void record_badblock(int f, long pg) {
    char path[64]; path_of(f, path, sizeof path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    struct fiemap *fm = calloc(1, sizeof(struct fiemap) + sizeof(struct fiemap_extent));
    fm->fm_start = (uint64_t)pg * PG; fm->fm_length = PG; fm->fm_extent_count = 1;
    if (!ioctl(fd, FS_IOC_FIEMAP, fm) && fm->fm_mapped_extents == 1) {
        struct fiemap_extent *x = &fm->fm_extents[0];
        record_badblock_blk((x->fe_physical + ((uint64_t)pg * PG - x->fe_logical)) / PG);
    }
    free(fm); close(fd);
}

/* ------------------------------------------------------------------ workers */
struct slot { char *addr; long npg; long pg0; int file; uint64_t *last; int used; };
static struct slot slots[NSLOT];
static sigjmp_buf jb;
static volatile sig_atomic_t in_touch;
#define MAXSIG 64
static struct { int code, lsb, slot; long pg; } sigs[MAXSIG];
static volatile int nsigs;
static int wid = -1;

static void bus_handler(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    if (nsigs < MAXSIG) {
        int s = -1; long pg = -1;
        for (int i = 0; i < NSLOT; i++)
            if (slots[i].used && (char *)si->si_addr >= slots[i].addr && (char *)si->si_addr < slots[i].addr + slots[i].npg * PG) {
                s = i; pg = ((char *)si->si_addr - slots[i].addr) / PG; break;
            }
        sigs[nsigs].code = si->si_code; sigs[nsigs].lsb = si->si_addr_lsb; sigs[nsigs].slot = s; sigs[nsigs].pg = pg;
        nsigs++;
    }
    if (in_touch) { in_touch = 0; siglongjmp(jb, 1); }
}

static int pagemap_fd = -1;
static uint64_t zero_pfn;

/* Whether file page pg of file f is a hole (no data extent: SEEK_DATA lands elsewhere). */
static int is_hole(int f, long pg) {
    char path[64]; path_of(f, path, sizeof path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    off_t d = lseek(fd, (off_t)pg * PG, SEEK_DATA);
    close(fd);
    return d != (off_t)pg * PG;
}
static void read_pfns(struct slot *sl, uint64_t *out) {
    uint64_t *e = malloc(sl->npg * 8);
    ssize_t r = pread(pagemap_fd, e, sl->npg * 8, ((uintptr_t)sl->addr / PG) * 8);
    for (long i = 0; i < sl->npg; i++) {
        uint64_t v = r == (ssize_t)(sl->npg * 8) ? e[i] : 0;
        out[i] = (v >> 63) ? (v & ((1ULL << 55) - 1)) : 0;
    }
    free(e);
}

static void snap(void) {
    int any = 0;
    uint64_t *cur = NULL;
    long cap = 0;
    for (int s = 0; s < NSLOT; s++) {
        struct slot *sl = &slots[s];
        if (!sl->used) continue;
        if (cap < sl->npg) { free(cur); cur = malloc(sl->npg * 8); cap = sl->npg; }
        read_pfns(sl, cur);
        for (long i = 0; i < sl->npg;) {
            if (cur[i] == sl->last[i]) { i++; continue; }
            long j = i + 1;
            while (j < sl->npg && cur[j] != sl->last[j] && (cur[i] ? cur[j] == cur[i] + (uint64_t)(j - i) : cur[j] == 0)) j++;
            if (!any) emit("{\"s\":%d,\"w\":%d,\"c\":[", step, wid);
            emit("%s[%d,%ld,%ld,%llu]", any ? "," : "", s, i, j - i, (unsigned long long)cur[i]);
            any = 1;
            i = j;
        }
        memcpy(sl->last, cur, sl->npg * 8);
    }
    free(cur);
    int n = nsigs;
    if (n) {
        if (!any) emit("{\"s\":%d,\"w\":%d,\"c\":[", step, wid);
        emit("],\"g\":[");
        for (int i = 0; i < n; i++) emit("%s[%d,%d,%d,%ld]", i ? "," : "", sigs[i].code, sigs[i].lsb, sigs[i].slot, sigs[i].pg);
        emit("]}\n");
        nsigs = 0;
    } else if (any) emit("]}\n");
}

static void worker_cmd(char **av, int ac) {
    const char *c = av[0];
    if (!strcmp(c, "snap")) { snap(); return; }
    if (!strcmp(c, "map") && ac >= 4) {
        int s = atoi(av[1]) % NSLOT;
        char path[64]; path_of(atoi(av[2]), path, sizeof path);
        int priv = av[3][0] == 'p';
        int fd = open(path, priv ? O_RDONLY : O_RDWR);
        if (fd < 0) { emit("{\"s\":%d,\"r\":%d}\n", step, errno); return; }
        off_t size = lseek(fd, 0, SEEK_END);
        size_t len = (size_t)size, al = 2 << 20;
        char *res = mmap(NULL, len + al, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        char *a = (char *)(((uintptr_t)res + al - 1) & ~(uintptr_t)(al - 1));
        char *p = mmap(a, len, PROT_READ | PROT_WRITE, (priv ? MAP_PRIVATE : MAP_SHARED) | MAP_FIXED, fd, 0);
        int e = errno;
        close(fd);
        if (p == MAP_FAILED) { emit("{\"s\":%d,\"r\":%d}\n", step, e); return; }
        slots[s].addr = p; slots[s].npg = (long)(len / PG); slots[s].pg0 = 0; slots[s].file = atoi(av[2]); slots[s].used = 1;
        slots[s].last = calloc(slots[s].npg, 8);
        emit("{\"s\":%d,\"r\":0}\n", step);
    } else if (!strcmp(c, "touch") && ac >= 4) {
        int s = atoi(av[1]) % NSLOT; long pg = atol(av[2]); int w = av[3][0] == 'w';
        uint64_t seed = ac >= 5 ? strtoull(av[4], 0, 0) : 0;
        if (!slots[s].used || pg < 0 || pg >= slots[s].npg) { emit("{\"s\":%d,\"r\":%d}\n", step, EINVAL); return; }
        volatile uint64_t *p = (volatile uint64_t *)(slots[s].addr + pg * PG);
        if (sigsetjmp(jb, 1) == 0) {
            in_touch = 1;
            if (w) { uint64_t word = (seed << 32) | (uint64_t)pg; for (int i = 0; i < PG / 8; i++) p[i] = word; }
            uint64_t v = p[0];
            in_touch = 0;
            emit("{\"s\":%d,\"r\":0,\"v\":\"0x%llx\"}\n", step, (unsigned long long)v);
        } else {
            emit("{\"s\":%d,\"r\":-1}\n", step);
        }
    } else if (!strcmp(c, "poison") && ac >= 3) {
        int s = atoi(av[1]) % NSLOT; long pg = atol(av[2]);
        if (!slots[s].used || pg < 0 || pg >= slots[s].npg) { emit("{\"s\":%d,\"r\":%d}\n", step, EINVAL); return; }
        char *p = slots[s].addr + pg * PG;
        uint64_t e = 0, pfn = 0;
        if (pread(pagemap_fd, &e, 8, ((uintptr_t)p / PG) * 8) == 8 && (e >> 63)) pfn = e & ((1ULL << 55) - 1);
        // The zero page (a hole, mapped or about to be) is not injected: its hwpoison flag would outlive this run
        // and change the next ones in the same boot (a second injection succeeds with BUS_MCEERR_AR).
        if (pfn && pfn == zero_pfn) { emit("{\"s\":%d,\"r\":-3}\n", step); return; }
        if (!pfn && is_hole(slots[s].file, slots[s].pg0 + pg)) { emit("{\"s\":%d,\"r\":-3}\n", step); return; }
        int r = 0;
        if (sigsetjmp(jb, 1) == 0) {
            in_touch = 1;
            r = madvise(p, PG, MADV_HWPOISON) ? errno : 0;
            in_touch = 0;
        }
        // Record the bad block as the machine-check handler would: the frame's block if it was a device frame,
        // the file's block at that page if the page was not present (madvise faulted it in); an anonymous
        // copy is DRAM and has no pmem block.
        if (pfn >= base_pfn) record_badblock_blk(pfn - base_pfn);
        else if (pfn == 0) record_badblock(slots[s].file, slots[s].pg0 + pg);
        emit("{\"s\":%d,\"r\":%d}\n", step, r);
    } else if (!strcmp(c, "early") && ac >= 2) {
        int r = prctl(PR_MCE_KILL, PR_MCE_KILL_SET, atoi(av[1]) ? PR_MCE_KILL_EARLY : PR_MCE_KILL_LATE, 0, 0);
        emit("{\"s\":%d,\"r\":%d}\n", step, r ? errno : 0);
    } else {
        emit("{\"s\":%d,\"r\":%d,\"bad\":1}\n", step, EINVAL);
    }
}

static void worker_loop(int rfd, int afd) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = bus_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER;
    sigaction(SIGBUS, &sa, NULL);
    pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
    FILE *in = fdopen(rfd, "r");
    char line[512];
    for (;;) {
        if (!fgets(line, sizeof line, in)) { if (errno == EINTR && !feof(in)) { clearerr(in); continue; } break; }
        char *av[16], *sp; int ac = 0;
        step = atoi(strtok_r(line, " \t\n", &sp));
        for (char *t; ac < 16 && (t = strtok_r(NULL, " \t\n", &sp));) av[ac++] = t;
        if (ac) worker_cmd(av, ac);
        flush_out();
        (void)!write(afd, "k", 1);
    }
    _exit(0);
}

/* ------------------------------------------------------------------ parent */
static int nw, wcmd[MAXW], wack[MAXW];
static int nfiles;
static char lastmap[MAXF][8192];

static void to_worker(int k, const char *msg) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%d %s\n", step, msg);
    flush_out();
    (void)!write(wcmd[k], buf, n);
    char ch;
    if (read(wack[k], &ch, 1) != 1) { emit("{\"s\":%d,\"w\":%d,\"died\":1}\n", step, k); }
}

static void fiemap_of(int f, char *buf, size_t cap, int *err) {
    char path[64]; path_of(f, path, sizeof path);
    int fd = open(path, O_RDONLY);
    buf[0] = 0; *err = 0;
    if (fd < 0) { *err = errno; return; }
    size_t sz = sizeof(struct fiemap) + 256 * sizeof(struct fiemap_extent);
    struct fiemap *fm = calloc(1, sz);
    fm->fm_length = ~0ULL; fm->fm_extent_count = 256;
    int r = ioctl(fd, FS_IOC_FIEMAP, fm);
    if (r) *err = errno;
    close(fd);
    size_t u = 0;
    for (unsigned i = 0; !r && i < fm->fm_mapped_extents && u < cap - 100; i++) {
        struct fiemap_extent *x = &fm->fm_extents[i];
        u += snprintf(buf + u, cap - u, "%s[%llu,%llu,%llu,%d]", i ? "," : "", (unsigned long long)x->fe_logical / PG,
                      (unsigned long long)x->fe_physical / PG, (unsigned long long)x->fe_length / PG, !!(x->fe_flags & FIEMAP_EXTENT_SHARED));
    }
    free(fm);
}

static char lastspace[1 << 16];
static void spacemap(char *buf, size_t cap) {
    enum { N = 256 };
    struct fsmap_head *h = calloc(1, fsmap_sizeof(N));
    size_t u = 0;
    buf[0] = 0;
    int fd = open(root, O_RDONLY);
    if (fd < 0) { free(h); return; }
    h->fmh_count = N;
    h->fmh_keys[1].fmr_device = ~0U; h->fmh_keys[1].fmr_physical = ~0ULL; h->fmh_keys[1].fmr_owner = ~0ULL;
    h->fmh_keys[1].fmr_offset = ~0ULL; h->fmh_keys[1].fmr_flags = ~0U;
    int ag0 = 1; // the first allocation group only: every file of a run lives there
    while (ag0 && !ioctl(fd, FS_IOC_GETFSMAP, h) && h->fmh_entries) {
        for (unsigned i = 0; i < h->fmh_entries && u < cap - 100; i++) {
            struct fsmap *r = &h->fmh_recs[i];
            if (r->fmr_owner == FMR_OWNER('X', 1) && r->fmr_physical) { ag0 = 0; break; } // the next group's superblock
            if (!(r->fmr_flags & FMR_OF_SPECIAL_OWNER)) continue; // file data: FIEMAP reports it
            char own[24];
            if (r->fmr_owner == FMR_OWN_FREE) strcpy(own, "free");
            else if (r->fmr_owner == FMR_OWNER('X', 7)) strcpy(own, "cow");
            else snprintf(own, sizeof own, "x%u", (unsigned)(r->fmr_owner & 0xffffffff));
            u += snprintf(buf + u, cap - u, "%s[%llu,%llu,\"%s\"]", u ? "," : "", (unsigned long long)r->fmr_physical / PG,
                          (unsigned long long)r->fmr_length / PG, own);
        }
        if (h->fmh_recs[h->fmh_entries - 1].fmr_flags & FMR_OF_LAST) break;
        fsmap_advance(h);
    }
    close(fd); free(h);
}

static void after_step(void) {
    for (int k = 0; k < nw; k++) to_worker(k, "snap");
    char m[8192];
    for (int f = 0; f < nfiles; f++) {
        int e;
        fiemap_of(f, m, sizeof m, &e);
        if (strcmp(m, lastmap[f])) { emit("{\"s\":%d,\"f\":%d,\"e\":[%s]}\n", step, f, m); strcpy(lastmap[f], m); }
    }
    static char sm[sizeof lastspace];
    spacemap(sm, sizeof sm);
    if (strcmp(sm, lastspace)) { emit("{\"s\":%d,\"m\":[%s]}\n", step, sm); strcpy(lastspace, sm); }
    flush_out();
}

static void set_hints(int fd) {
    struct fsxattr fx;
    if (ioctl(fd, FS_IOC_FSGETXATTR, &fx)) return;
    fx.fsx_xflags |= FS_XFLAG_COWEXTSIZE;
    fx.fsx_cowextsize = PG;
    if (pmd_variant) { fx.fsx_xflags |= FS_XFLAG_EXTSIZE; fx.fsx_extsize = 2 << 20; }
    if (ioctl(fd, FS_IOC_FSSETXATTR, &fx)) fprintf(stderr, "kq: FSSETXATTR failed: %s\n", strerror(errno));
}

static int write_pages(int f, long pg, long n, uint64_t seed) {
    char path[64]; path_of(f, path, sizeof path);
    int fd = open(path, O_RDWR);
    if (fd < 0) return errno;
    uint64_t *b = malloc(n * PG);
    fill(b, (size_t)n * PG / 8, seed, (uint64_t)pg);
    ssize_t r = pwrite(fd, b, n * PG, pg * PG);
    int e = r < 0 ? errno : r != n * PG ? EIO : 0;
    free(b); close(fd);
    return e;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: kq pte|pmd PMEM_BASE_PFN [DIR [BADBLOCKS_FILE]] < script\n"); return 2; }
    pmd_variant = !strcmp(argv[1], "pmd");
    base_pfn = strtoull(argv[2], 0, 0);
    if (argc > 3) root = argv[3];
    if (argc > 4) badblocks = argv[4];
    {   /* The zero page's pfn (a read of untouched private anonymous memory maps it), so the host can
           tell a read of a file hole (dax_load_hole maps the same page) from a page of DRAM of its own. */
        int pm = open("/proc/self/pagemap", O_RDONLY);
        volatile char *z = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uint64_t e = 0;
        if (z != MAP_FAILED) (void)z[0];
        if (pm >= 0 && z != MAP_FAILED && pread(pm, &e, 8, ((uintptr_t)z / PG) * 8) == 8 && (e >> 63))
            emit("{\"zero\":%llu}\n", (unsigned long long)(zero_pfn = e & ((1ULL << 55) - 1)));
        if (pm >= 0) close(pm);
    }
    char line[512];
    while (fgets(line, sizeof line, stdin)) {
        char *av[16], *sp; int ac = 0;
        for (char *t = strtok_r(line, " \t\n", &sp); t && ac < 16; t = strtok_r(NULL, " \t\n", &sp)) av[ac++] = t;
        if (!ac || av[0][0] == '#') continue;
        step++;
        const char *c = av[0];
        if (!strcmp(c, "W") && ac >= 3) {
            int k = atoi(av[1]);
            if (k >= nw) { emit("{\"s\":%d,\"r\":%d}\n", step, EINVAL); after_step(); continue; }
            char msg[400]; size_t u = 0; msg[0] = 0;
            for (int i = 2; i < ac; i++) u += snprintf(msg + u, sizeof msg - u, "%s%s", i > 2 ? " " : "", av[i]);
            to_worker(k, msg);
        } else if (!strcmp(c, "workers") && ac >= 2) {
            int n = atoi(av[1]);
            for (int k = 0; k < n && nw < MAXW; k++) {
                int p1[2], p2[2];
                if (pipe(p1) || pipe(p2)) { perror("pipe"); return 1; }
                flush_out();
                pid_t pid = fork();
                if (pid == 0) { wid = nw; close(p1[1]); close(p2[0]); worker_loop(p1[0], p2[1]); }
                close(p1[0]); close(p2[1]); wcmd[nw] = p1[1]; wack[nw] = p2[0];
                nw++;
            }
            emit("{\"s\":%d,\"r\":0}\n", step);
        } else if (!strcmp(c, "create") && ac >= 4) {
            int f = atoi(av[1]);
            char path[64]; path_of(f, path, sizeof path);
            int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
            int r = fd < 0 ? errno : 0;
            if (fd >= 0) { set_hints(fd); close(fd); r = write_pages(f, 0, atol(av[2]), strtoull(av[3], 0, 0)); }
            if (f + 1 > nfiles && f < MAXF) nfiles = f + 1;
            emit("{\"s\":%d,\"r\":%d}\n", step, r);
        } else if (!strcmp(c, "write") && ac >= 4) {
            emit("{\"s\":%d,\"r\":%d}\n", step, write_pages(atoi(av[1]), atol(av[2]), 1, strtoull(av[3], 0, 0)));
        } else if (!strcmp(c, "clone") && ac >= 6) {
            char sp_[64], dp[64]; path_of(atoi(av[1]), sp_, sizeof sp_); path_of(atoi(av[3]), dp, sizeof dp);
            int s = open(sp_, O_RDONLY), d = open(dp, O_RDWR);
            struct file_clone_range fcr = { .src_fd = s, .src_offset = strtoull(av[2], 0, 0) * PG,
                                            .src_length = strtoull(av[5], 0, 0) * PG, .dest_offset = strtoull(av[4], 0, 0) * PG };
            int r = (s < 0 || d < 0) ? errno : ioctl(d, FICLONERANGE, &fcr) ? errno : 0;
            if (s >= 0) close(s);
            if (d >= 0) close(d);
            emit("{\"s\":%d,\"r\":%d}\n", step, r);
        } else if ((!strcmp(c, "punch") || !strcmp(c, "unshare")) && ac >= 4) {
            char path[64]; path_of(atoi(av[1]), path, sizeof path);
            int fd = open(path, O_RDWR);
            int mode = !strcmp(c, "punch") ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_UNSHARE_RANGE;
            int r = fd < 0 ? errno : fallocate(fd, mode, atol(av[2]) * PG, atol(av[3]) * PG) ? errno : 0;
            if (fd >= 0) close(fd);
            emit("{\"s\":%d,\"r\":%d}\n", step, r);
        } else if (!strcmp(c, "pread") && ac >= 3) {
            char path[64]; path_of(atoi(av[1]), path, sizeof path);
            int fd = open(path, O_RDONLY); uint64_t v = 0;
            ssize_t r = fd < 0 ? -1 : pread(fd, &v, 8, atol(av[2]) * PG);
            int e = r < 0 ? errno : r != 8 ? EIO : 0;
            if (fd >= 0) close(fd);
            if (e) emit("{\"s\":%d,\"r\":%d}\n", step, e);
            else emit("{\"s\":%d,\"r\":0,\"v\":\"0x%llx\"}\n", step, (unsigned long long)v);
        } else if (!strcmp(c, "fiemap") && ac >= 2) {
            char m[8192]; int e;
            fiemap_of(atoi(av[1]), m, sizeof m, &e);
            emit("{\"s\":%d,\"r\":%d}\n", step, e);
        } else {
            emit("{\"s\":%d,\"r\":%d,\"bad\":1}\n", step, EINVAL);
        }
        after_step();
    }
    for (int k = 0; k < nw; k++) close(wcmd[k]);
    while (wait(NULL) > 0) {}
    flush_out();
    return 0;
}
