#!/usr/bin/env bash
# daxtool kernel oracle: host setup. Idempotent; everything lands in ONE cache folder and is reused.
#   oracle/setup.sh KERNEL(6.12|6.18)
# Prints `key=value` lines on stdout at the end (kernel image, base initramfs, guest program, pmem image).
# Steps (each skipped when its result is already cached):
#   1. host packages (apt-get install, as root) when a tool is missing
#   2. an ISOLATED apt configuration under the cache (its own sources list, lists and archives) whose
#      mirror is the Debian mirror already configured on the host; the host's apt sources are never changed
#   3. the kernel .deb fetched with `apt-get download` and only extracted (dpkg-deb -x), never installed
#   4. the guest program (oracle/guest/kq.c) compiled static with gcc
#   5. the base initramfs: busybox, mkfs.xfs, ndctl and their libraries, the kernel modules, /init
# (The NVDIMM backing files, one per run, are made by oracle/kernel.mjs in the same folder.)
# Any failure is loud: a message on stderr and a non-zero exit.
set -euo pipefail
KSER=${1:-6.12}
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${DAXTOOL_ORACLE_CACHE:-$HOME/.cache/daxtool-oracle}
mkdir -p "$CACHE"
die() { echo "oracle setup: $*" >&2; exit 1; }
log() { echo "oracle setup: $*" >&2; }

# ---- 1. host packages -------------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v ndctl >/dev/null || need+=(ndctl)
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v gcc >/dev/null || need+=(gcc)
[ -e /usr/include/stdio.h ] || need+=(libc6-dev)
command -v depmod >/dev/null || [ -x /usr/sbin/depmod ] || [ -x /sbin/depmod ] || need+=(kmod)
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing host packages (${need[*]}); run as root or install them: apt-get install ${need[*]}"
  log "installing host packages: ${need[*]}"
  apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 || die "apt-get install ${need[*]} failed"
fi
dpkg -s busybox-static >/dev/null 2>&1 || die "busybox-static is not installed (the guest needs a static busybox)"
DEPMOD=$(command -v depmod || echo /usr/sbin/depmod)

# ---- 2. isolated apt configuration ------------------------------------------------------------
case "$KSER" in
  6.12) SUITES="bookworm-backports"; KPAT='^linux-image-6\.12\.[0-9]+\+(bpo|deb12)-amd64$' ;;
  6.18) SUITES="trixie-backports trixie"; KPAT='^linux-image-6\.18\.[0-9]+\+(bpo|deb13)-amd64$' ;;
  *) die "unknown kernel series '$KSER' (use 6.12 or 6.18)" ;;
esac
mirror() { # the first Debian archive URI configured on the host (not the security archive)
  local u=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    u=$(awk '/^URIs:/{for(i=2;i<=NF;i++) if ($i !~ /security/) {print $i; exit}}' "$f")
    [ -n "$u" ] && { echo "$u"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    u=$(awk '$1=="deb" { for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/ && $(i+1) ~ /^(bookworm|trixie|sid|stable|testing)/) {print $i; exit} else break } }' "$f")
    [ -n "$u" ] && { echo "$u"; return; }
  done
}
APTD=$CACHE/apt-$KSER
KDIR=$CACHE/kernel-$KSER
if [ ! -f "$KDIR/ok" ]; then
  MIRROR=$(mirror); [ -n "$MIRROR" ] || die "no Debian mirror found in /etc/apt/sources.list*"
  KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$KEYRING" ] || die "$KEYRING missing (package debian-archive-keyring)"
  mkdir -p "$APTD/lists/partial" "$APTD/cache/archives/partial" "$APTD/etc/preferences.d"
  : > "$APTD/sources.list"
  for s in $SUITES; do echo "deb [signed-by=$KEYRING] $MIRROR $s main" >> "$APTD/sources.list"; done
  A=(-o "Dir::Etc::SourceList=$APTD/sources.list" -o Dir::Etc::SourceParts=/nonexistent
     -o "Dir::State::Lists=$APTD/lists" -o "Dir::Cache=$APTD/cache" -o "Dir::Etc::Preferences=$APTD/etc/preferences"
     -o "Dir::Etc::PreferencesParts=$APTD/etc/preferences.d" -o "Dir::State::status=$APTD/status" -o APT::Get::List-Cleanup=0
     -o APT::Sandbox::User=root)
  : > "$APTD/status"
  log "apt update (isolated: $APTD, suites: $SUITES)"
  apt-get "${A[@]}" update -qq >&2 || die "isolated apt-get update failed (mirror $MIRROR, suites $SUITES)"
  PKG=$(apt-cache "${A[@]}" pkgnames linux-image-6 | grep -E "$KPAT" | sort -V | tail -1)
  [ -n "$PKG" ] || die "no kernel package matching $KPAT in $SUITES"
  log "downloading $PKG"
  mkdir -p "$CACHE/debs"
  (cd "$CACHE/debs" && apt-get "${A[@]}" download "$PKG" >&2) || die "apt-get download $PKG failed"
  DEB=$(ls -t "$CACHE/debs/${PKG}"_*.deb | head -1)
  rm -rf "$KDIR"; mkdir -p "$KDIR/root"
  log "extracting $(basename "$DEB")"
  dpkg-deb -x "$DEB" "$KDIR/root" || die "dpkg-deb -x $DEB failed"
  KV=${PKG#linux-image-}
  [ -d "$KDIR/root/lib/modules/$KV" ] || { mkdir -p "$KDIR/root/lib"; ln -sfn ../usr/lib/modules "$KDIR/root/lib/modules"; }
  [ -f "$KDIR/root/boot/vmlinuz-$KV" ] || die "the package $PKG has no /boot/vmlinuz-$KV (a split meta package?)"
  "$DEPMOD" -b "$KDIR/root" "$KV" || die "depmod failed"
  echo "$KV" > "$KDIR/kv"; rm -f "$DEB"; touch "$KDIR/ok"
fi
KV=$(cat "$KDIR/kv")

# ---- 4. guest program --------------------------------------------------------------------------
SRC=$HERE/guest/kq.c
SUM=$(sha256sum "$SRC" | cut -c1-16)
KQ=$CACHE/kq-$SUM
if [ ! -x "$KQ" ]; then
  log "compiling the guest program"
  gcc -O2 -static -Wall -o "$KQ.tmp" "$SRC" >&2 || die "gcc -static $SRC failed (libc6-dev installed?)"
  mv "$KQ.tmp" "$KQ"
fi

# ---- 5. base initramfs (tools + modules + /init) -------------------------------------------------
ISUM=$( (cat "$HERE/guest/init" "$0"; echo "$KV") | sha256sum | cut -c1-16)
BASE=$CACHE/base-$KSER-$ISUM.cpio.gz
if [ ! -f "$BASE" ]; then
  log "building the base initramfs for $KV"
  R=$CACHE/iroot-$KSER; rm -rf "$R"
  mkdir -p "$R"/{bin,sbin,lib64,lib/x86_64-linux-gnu,proc,sys,dev,mnt,tmp,kq,lib/modules/kq,etc,run,var/tmp}
  cp /bin/busybox "$R/bin/busybox"
  for b in $(command -v mkfs.xfs) $(command -v ndctl); do
    cp "$b" "$R/bin/"
    for l in $(ldd "$b" | awk '/=>/{print $3}'); do cp -L "$l" "$R/lib/x86_64-linux-gnu/"; done
  done
  cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
  MODSRC=$KDIR/root/lib/modules/$KV/kernel
  for m in drivers/nvdimm/libnvdimm drivers/acpi/nfit/nfit drivers/nvdimm/nd_btt drivers/nvdimm/nd_pmem \
           drivers/dax/device_dax drivers/dax/dax_pmem crypto/crc32c_generic arch/x86/crypto/crc32c-intel lib/libcrc32c fs/xfs/xfs mm/hwpoison-inject; do
    if [ -f "$MODSRC/$m.ko.xz" ]; then xz -dc "$MODSRC/$m.ko.xz" > "$R/lib/modules/kq/$(basename $m).ko"
    elif [ -f "$MODSRC/$m.ko" ]; then cp "$MODSRC/$m.ko" "$R/lib/modules/kq/"; fi
  done
  for m in libnvdimm nd_pmem xfs; do [ -f "$R/lib/modules/kq/$m.ko" ] || grep -q "/$m.ko" "$KDIR/root/lib/modules/$KV/modules.builtin" || die "kernel module $m not found in $KV"; done
  cp "$HERE/guest/init" "$R/init"; chmod +x "$R/init"
  echo 'root:x:0:0:root:/:/bin/sh' > "$R/etc/passwd"
  (cd "$R" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$BASE.tmp") || die "cpio failed"
  mv "$BASE.tmp" "$BASE"; rm -rf "$R"
fi


echo "kv=$KV"
echo "kernel=$KDIR/root/boot/vmlinuz-$KV"
echo "base=$BASE"
echo "kq=$KQ"
echo "cache=$CACHE"
