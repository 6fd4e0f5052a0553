#!/usr/bin/env bash
# build-image.sh ARCH OUTDIR [ROLE] — build a kvmlab guest image from Debian packages.
#
# ARCH is x86_64 or ppc64le. ROLE is guest (the default: the SSH-reachable experiment guest) or
# nested-host (x86_64 only: the KVM host kvmlab boots under TCG for `--on nested`, with kvm-amd and
# 9p, and nested-host-init.sh as /init). Writes OUTDIR/{kernel,initrd.img,ssh_host_ed25519_key.pub,
# manifest.json}; on x86_64 the kernel is the uncompressed PVH vmlinux when the package's has one.
# Packages are fetched with `apt-get download` into ${KVMLAB_CACHE:-/var/cache/kvmlab}/debs/ARCH and
# unpacked with `dpkg-deb -x`; nothing of the guest architecture is ever installed on the host.
# KVMLAB_KERNEL=debian:SERIES (e.g. debian:6.12) takes the kernel from the Debian suite that carries
# that series instead of the host's own, through a private apt sources list and state directory
# under the cache (the host's apt configuration is never changed). KVMLAB_KERNEL=path:/abs/bzImage with
# KVMLAB_MODULES=/abs/lib/modules/RELEASE takes a kernel of the user's own (a build tree's, after
# `make modules_install INSTALL_MOD_PATH=…`). See README.md in this directory.
set -euo pipefail

PROG=build-image.sh
die() { echo "$PROG: error: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

[[ $# -eq 2 || $# -eq 3 ]] || { echo "usage: $PROG x86_64|ppc64le OUTDIR [guest|nested-host]" >&2; exit 2; }
ARCH=$1
OUTDIR=$2
ROLE=${3:-guest}

# Per-arch facts. NET_MODULES must be present (as module or built in); OPT_MODULES are
# taken when the kernel has them as modules.
case $ARCH in
x86_64)
	DEBARCH=amd64 KMETA=linux-image-amd64 KIMAGE=vmlinuz ;;
ppc64le)
	DEBARCH=ppc64el KMETA=linux-image-powerpc64le KIMAGE=vmlinux ;;
*) die "unsupported ARCH '$ARCH' (want x86_64 or ppc64le)" ;;
esac
case $ROLE in
guest)
	NET_MODULES=(virtio_pci virtio_net) OPT_MODULES=(virtio_rng) INIT=init.sh ;;
nested-host)
	[[ $ARCH == x86_64 ]] || die "a nested host is x86_64 only"
	# 9p over virtio for the shares, KVM for AMD's SVM (what QEMU's TCG offers with -cpu max).
	NET_MODULES=(virtio_pci 9pnet_virtio 9p kvm_amd) OPT_MODULES=() INIT=nested-host-init.sh ;;
*) die "unknown ROLE '$ROLE' (want guest or nested-host)" ;;
esac
SSH_PKG=dropbear-bin
BUSYBOX_PKG=busybox-static
# The kernel from another Debian suite: the series it carries, the suite, and a private apt for it.
KERNEL_SPEC=${KVMLAB_KERNEL:-}
KSERIES= KSUITE= USER_KERNEL= USER_MODULES=
if [[ $KERNEL_SPEC == path:* ]]; then
	USER_KERNEL=${KERNEL_SPEC#path:}
	USER_MODULES=${KVMLAB_MODULES:-}
	[[ $USER_KERNEL == /* && -f $USER_KERNEL ]] || die "KVMLAB_KERNEL=$KERNEL_SPEC: want path:/absolute/path/to/bzImage of a file that exists"
	[[ $USER_MODULES == /* && -f $USER_MODULES/modules.builtin ]] ||
		die "KVMLAB_MODULES=$USER_MODULES: want the kernel's lib/modules/RELEASE directory, absolute, with modules.builtin (as \`make modules_install INSTALL_MOD_PATH=DIR\` leaves it)"
elif [[ -n $KERNEL_SPEC ]]; then
	[[ $KERNEL_SPEC =~ ^debian:([0-9]+\.[0-9]+)$ ]] || die "KVMLAB_KERNEL=$KERNEL_SPEC: want debian:SERIES, e.g. debian:6.12"
	KSERIES=${BASH_REMATCH[1]}
	case $KSERIES in
	6.12) KSUITE=trixie ;;
	*) die "KVMLAB_KERNEL=$KERNEL_SPEC: no Debian suite kvmlab knows carries Linux $KSERIES (known: debian:6.12 from trixie; the host's own without KVMLAB_KERNEL)" ;;
	esac
fi

[[ $(id -u) -eq 0 ]] || die "must run as root"
SCRIPTDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST_FILES=(build-image.sh "$INIT" kvmlab-load.sh)
for f in "${GUEST_FILES[@]}"; do [[ -f $SCRIPTDIR/$f ]] || die "missing $SCRIPTDIR/$f"; done
CACHE=${KVMLAB_CACHE:-/var/cache/kvmlab}
DEBDIR=$CACHE/debs/$ARCH
RESOLVED=$CACHE/resolved-$ARCH${KSERIES:+-linux-$KSERIES}.txt
# apt options for the private suite: its own sources list and lists, nothing of the host's
KAPT=()
if [[ -n $KSUITE ]]; then
	KAPTDIR=$CACHE/apt-$KSUITE
	KAPT=(-o "Dir::Etc::SourceList=$KAPTDIR/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$KAPTDIR/lists" -o Dir::Cache=$KAPTDIR/cache)
fi
APT_LOCK=(-o DPkg::Lock::Timeout=600)

# ---------------------------------------------------------------- host preparation
host_tools() {
	local need=() t pkg
	for t in cpio:cpio dropbearkey:dropbear-bin gzip:gzip xz:xz-utils readelf:binutils depmod:kmod \
		sha256sum:coreutils dpkg-deb:dpkg; do
		command -v "${t%%:*}" >/dev/null 2>&1 || need+=("${t#*:}")
	done
	((${#need[@]})) || return 0
	log "installing host tools: ${need[*]}"
	if ! apt-get "${APT_LOCK[@]}" install -y --no-install-recommends "${need[@]}" >/dev/null; then
		apt-get "${APT_LOCK[@]}" update >/dev/null
		apt-get "${APT_LOCK[@]}" install -y --no-install-recommends "${need[@]}" >/dev/null ||
			die "cannot install host tools: ${need[*]}"
	fi
}

# A guest architecture other than the host's is added to dpkg (for `apt-get download`) once.
foreign_arch() {
	[[ $DEBARCH != "$(dpkg --print-architecture)" ]] || return 0
	local update=
	if ! dpkg --print-foreign-architectures | grep -qx "$DEBARCH"; then
		log "adding dpkg architecture $DEBARCH"
		dpkg --add-architecture "$DEBARCH"
		update=1
	fi
	compgen -G "/var/lib/apt/lists/*_binary-${DEBARCH}_Packages*" >/dev/null || update=1
	if [[ -n $update ]]; then
		log "apt-get update (for $DEBARCH)"
		if ! apt-get "${APT_LOCK[@]}" update >/dev/null; then
			# A partial failure (e.g. one mirror mid-sync) still leaves usable lists.
			compgen -G "/var/lib/apt/lists/*_binary-${DEBARCH}_Packages*" >/dev/null ||
				die "apt-get update failed: no package lists for $DEBARCH"
			log "warning: apt-get update reported errors; using the $DEBARCH lists it fetched"
		fi
	fi
}

# The private suite's package lists: the host's own mirror, another suite, fetched once a day.
private_suite() {
	[[ -n $KSUITE ]] || return 0
	local uri
	uri=$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null | grep -m1 '^http' || true)
	[[ -n $uri ]] || uri=$(sed -n 's/^URIs: *\(http[^ ]*\).*/\1/p; s/^deb  *\(\[[^]]*\] *\)\?\(http[^ ]*\).*/\2/p' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | head -n1)
	[[ -n $uri ]] || die "cannot find the host's Debian mirror in its apt configuration"
	mkdir -p "$KAPTDIR/lists/partial" "$KAPTDIR/cache/archives/partial"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${uri%/} $KSUITE main" >"$KAPTDIR/sources.list"
	if [[ -z $(find "$KAPTDIR/lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null) ]]; then
		log "apt-get update for $KSUITE (private lists in $KAPTDIR)"
		apt-get "${KAPT[@]}" "${APT_LOCK[@]}" update >/dev/null || die "apt-get update for $KSUITE failed"
	fi
}

# The newest linux-image-SERIES.N+debM-ARCH of the private suite, and its version.
private_kernel() {
	local name
	name=$(apt-cache "${KAPT[@]}" pkgnames "linux-image-$KSERIES." 2>/dev/null |
		grep -E "^linux-image-${KSERIES//./\\.}\.[0-9]+\+deb[0-9]+-$DEBARCH\$" | sort -V | tail -n1) || true
	[[ -n $name ]] || die "no linux-image-$KSERIES.*-$DEBARCH in $KSUITE"
	echo "$name"
}

# ---------------------------------------------------------------- package resolution
# Resolving with apt-cache costs seconds here (no binary apt cache), so the result is kept in
# $RESOLVED, keyed by a fingerprint of everything apt's answer depends on.
apt_fingerprint() {
	{
		echo "$ARCH $DEBARCH"
		dpkg --print-foreign-architectures
		stat -c '%n %s %Y' /var/lib/apt/lists/*Packages* /etc/apt/sources.list \
			/etc/apt/sources.list.d/* /etc/apt/preferences /etc/apt/preferences.d/* \
			/var/lib/dpkg/status 2>/dev/null || true
		cat "$SCRIPTDIR/build-image.sh"
		echo "kernel series $KSERIES"
		[[ -z $KSUITE ]] || stat -c '%n %s %Y' "$KAPTDIR"/lists/*Packages* 2>/dev/null || true
	} | sha256sum | cut -d' ' -f1
}

# Depends/PreDepends of the given packages (first real alternative of each or-group).
deps_of() {
	apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
		--no-replaces --no-enhances "${@/%/:$DEBARCH}" 2>/dev/null |
		awk '/^ *\|?(Pre)?Depends:/ {
			alt = ($1 ~ /^\|/); name = $2
			if (!taken && name !~ /^</) { sub(/:.*/, "", name); print name; taken = 1 }
			if (!alt) taken = 0
		}' | sort -u
}

resolve() {
	local kpkg pkgs=() queue=() next=() p
	declare -A seen=()
	kpkg=$(apt-cache depends "$KMETA:$DEBARCH" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^: ]*\).*/\1/p') || true
	kpkg=${kpkg%%$'\n'*}
	[[ -n $kpkg ]] || die "package not found: $KMETA:$DEBARCH (no linux-image-* dependency; apt-get update?)"
	[[ -z $KSUITE ]] || kpkg=$(private_kernel)
	# Library packages: the Depends closure of the SSH server package.
	queue=("$SSH_PKG")
	seen[$SSH_PKG]=1
	while ((${#queue[@]})); do
		next=()
		while read -r p; do
			[[ -n $p && -z ${seen[$p]:-} ]] || continue
			seen[$p]=1
			next+=("$p")
		done < <(deps_of "${queue[@]}")
		queue=("${next[@]+"${next[@]}"}")
	done
	pkgs=("$kpkg" "$BUSYBOX_PKG" "${!seen[@]}")
	# Candidate versions, in one apt-cache call.
	local out
	out=$(apt-cache policy "${pkgs[@]/%/:$DEBARCH}" 2>/dev/null |
		awk '/^[^ ].*:$/ { name = $0; sub(/:$/, "", name); sub(/:.*/, "", name) }
		     /^  Candidate:/ { if ($2 != "(none)") print name, $2 }') || true
	if [[ -n $KSUITE ]]; then
		out=$(grep -v "^$kpkg " <<<"$out" || true)
		out+=$'\n'$(apt-cache "${KAPT[@]}" policy "$kpkg" 2>/dev/null | awk -v n="$kpkg" '/^  Candidate:/ { if ($2 != "(none)") print n, $2 }')
	fi
	for p in "${pkgs[@]}"; do
		grep -q "^$p " <<<"$out" || die "package not found: $p:$DEBARCH (apt-get update?)"
	done
	{
		echo "fingerprint $1"
		echo "kernel $kpkg"
		sort -u <<<"$out" | sed 's/^/pkg /'
	} >"$RESOLVED.tmp"
	mv "$RESOLVED.tmp" "$RESOLVED"
}

mkdir -p "$DEBDIR"
exec 9>"$CACHE/.lock-$ARCH" # one build per ARCH at a time (shared cache and resolution)
flock 9
host_tools
foreign_arch
private_suite
fp=$(apt_fingerprint)
if [[ ! -f $RESOLVED ]] || [[ $(head -n1 "$RESOLVED") != "fingerprint $fp" ]]; then
	resolve "$fp"
fi
KPKG=$(sed -n 's/^kernel //p' "$RESOLVED")
declare -A VERSION=()
while read -r _ name ver; do VERSION[$name]=$ver; done < <(grep '^pkg ' "$RESOLVED")
# a kernel of the user's own replaces the package's, which is then not even unpacked
if [[ -n $USER_KERNEL ]]; then
	unset "VERSION[$KPKG]"
	KPKG="user kernel $USER_KERNEL"
fi

INPUTS_HASH=$({
	echo "arch $ARCH role $ROLE"
	for p in $(printf '%s\n' "${!VERSION[@]}" | sort); do echo "pkg $p=${VERSION[$p]}"; done
	for f in "${GUEST_FILES[@]}"; do echo "file $f"; cat "$SCRIPTDIR/$f"; done
	if [[ -n $USER_KERNEL ]]; then
		echo "user kernel $(sha256sum <"$USER_KERNEL")"
		(cd "$USER_MODULES" && find . -type f -printf '%P %s %T@\n' | LC_ALL=C sort | sha256sum)
	fi
} | sha256sum | cut -d' ' -f1)

OUT_FILES=(kernel initrd.img ssh_host_ed25519_key.pub manifest.json)
uptodate=1
for f in "${OUT_FILES[@]}"; do [[ -s $OUTDIR/$f ]] || uptodate=; done
if [[ -n $uptodate ]] && grep -q "\"inputsHash\": \"$INPUTS_HASH\"" "$OUTDIR/manifest.json"; then
	echo "up to date: $OUTDIR"
	exit 0
fi

# ---------------------------------------------------------------- build
log "building $ARCH image in $OUTDIR (kernel package $KPKG)"
mkdir -p "$OUTDIR"
rm -f "$OUTDIR/manifest.json"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvmlab-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
X=$WORK/x      # one extracted tree per package
R=$WORK/root   # the initramfs
mkdir -p "$X" "$R"

deb_file() { # NAME -> cached .deb path (downloaded when missing)
	local name=$1 ver=${VERSION[$1]} f
	f=$(compgen -G "$DEBDIR/${name}_${ver//:/%3a}_*.deb" | head -n1) || true
	if [[ -z $f ]]; then
		local apt=()
		[[ $name != "$KPKG" ]] || apt=("${KAPT[@]}")
		(cd "$DEBDIR" && apt-get -q "${apt[@]}" -o APT::Sandbox::User=root download "$name:$DEBARCH=$ver" >/dev/null) ||
			die "package not found: $name:$DEBARCH=$ver (apt-get download failed)"
		f=$(compgen -G "$DEBDIR/${name}_${ver//:/%3a}_*.deb" | head -n1) || true
		[[ -n $f ]] || die "package not found: $name:$DEBARCH=$ver"
	fi
	echo "$f"
}
for p in "${!VERSION[@]}"; do
	mkdir -p "$X/$p"
	dpkg-deb -x "$(deb_file "$p")" "$X/$p"
done
LIBPKGS=()
for p in $(printf '%s\n' "${!VERSION[@]}" | sort); do
	[[ $p == "$KPKG" || $p == "$BUSYBOX_PKG" || $p == "$SSH_PKG" ]] || LIBPKGS+=("$p")
done

# Resolve a path inside an extracted tree, following symlinks there (not on the host).
resolve_in() { # ROOT RELPATH -> RELPATH of the final file
	local root=$1 rel=$2 t n=0
	while [[ -L $root/$rel ]]; do
		((++n < 40)) || die "symlink loop at $root/$rel"
		t=$(readlink "$root/$rel")
		if [[ $t == /* ]]; then rel=${t#/}; else rel=$(dirname "$rel")/$t; fi
		rel=$(realpath -ms "/$rel"); rel=${rel#/}
	done
	[[ -f $root/$rel ]] || return 1
	echo "$rel"
}
install_file() { # SRC DEST-IN-ROOT MODE
	mkdir -p "$(dirname "$R/$2")"
	cp "$1" "$R/$2"
	chmod "$3" "$R/$2"
}

# --- kernel
if [[ -n $USER_KERNEL ]]; then
	# the user's tree, mirrored as links: depmod below writes into the mirror, never into theirs
	kimg=$USER_KERNEL
	KVER=$(basename "$USER_MODULES")
	MODROOT=$X/user-kernel
	mkdir -p "$MODROOT/lib/modules"
	cp -as "$(realpath "$USER_MODULES")" "$MODROOT/lib/modules/$KVER"
else
	kimg=$(compgen -G "$X/$KPKG/boot/$KIMAGE-*" | head -n1) || true
	[[ -n $kimg ]] || die "no /boot/$KIMAGE-* in $KPKG"
	KVER=${kimg##*/$KIMAGE-}
	MODROOT=$X/$KPKG
	# a merged-/usr package (trixie and later) ships its modules under usr/lib
	[[ -d $MODROOT/lib/modules/$KVER || ! -d $MODROOT/usr/lib/modules/$KVER ]] || MODROOT=$X/$KPKG/usr
fi
[[ -d $MODROOT/lib/modules/$KVER ]] || die "no lib/modules/$KVER in $KPKG"
MODDIR=$MODROOT/lib/modules/$KVER

# --- kernel modules for virtio networking, in dependency order from modules.dep. Debian's
# kernel packages leave modules.dep to depmod in postinst, so generate it from the package.
if [[ ! -s $MODDIR/modules.dep ]]; then
	depmod -b "$MODROOT" "$KVER" || die "depmod failed for $KPKG"
fi
modname() { local b=${1##*/}; b=${b%%.ko*}; echo "${b//-/_}"; }
config_of() { # MODULE -> the Kconfig option that builds it
	case $1 in
	virtio_pci) echo CONFIG_VIRTIO_PCI ;; virtio_net) echo CONFIG_VIRTIO_NET ;; 9pnet_virtio) echo CONFIG_NET_9P_VIRTIO ;;
	9p) echo CONFIG_9P_FS ;; kvm_amd) echo 'CONFIG_KVM_AMD (with CONFIG_KVM)' ;; *) echo "the option of $1" ;;
	esac
}
declare -A MODPATH=() MODDEPS=() LOADED=()
while IFS=: read -r path deps; do
	m=$(modname "$path")
	MODPATH[$m]=$path
	MODDEPS[$m]=$deps
done <"$MODDIR/modules.dep"
MODORDER=()
visit_mod() {
	local m=$1 d
	[[ -z ${LOADED[$m]:-} ]] || return 0
	LOADED[$m]=1
	for d in ${MODDEPS[$m]}; do visit_mod "$(modname "$d")"; done
	MODORDER+=("$m")
}
is_builtin() { sed 's|.*/||; s|\.ko.*||; s|-|_|g' "$MODDIR/modules.builtin" | grep -qx "$1"; }
BUILTIN=()
for m in "${NET_MODULES[@]}" "${OPT_MODULES[@]}"; do
	if [[ -n ${MODPATH[$m]:-} ]]; then
		visit_mod "$m"
	elif is_builtin "$m"; then
		BUILTIN+=("$m")
	elif [[ " ${NET_MODULES[*]} " == *" $m "* ]]; then
		die "kernel $KVER has no module or built-in $m: build it with $(config_of "$m")=y or =m"
	fi
done
mkdir -p "$R/lib/modules/$KVER" "$R/etc"
: >"$R/etc/kvmlab-modules"
for m in "${MODORDER[@]}"; do
	src=$MODDIR/${MODPATH[$m]}
	dst=$R/lib/modules/$KVER/$m.ko
	case $src in
	*.ko) cp "$src" "$dst" ;;
	*.ko.xz) xz -dc "$src" >"$dst" ;;
	*.ko.gz) gzip -dc "$src" >"$dst" ;;
	*.ko.zst) zstd -qdc "$src" >"$dst" ;;
	*) die "unknown module format: $src" ;;
	esac
	echo "$m" >>"$R/etc/kvmlab-modules"
done
log "kernel $KVER; modules: ${MODORDER[*]:-none}; built in: ${BUILTIN[*]:-none}"

# --- busybox (static) and its applet links
bb=$X/$BUSYBOX_PKG/bin/busybox
[[ -f $bb ]] || die "no bin/busybox in $BUSYBOX_PKG"
! readelf -l "$bb" | grep -q 'program interpreter' || die "$BUSYBOX_PKG's busybox is not static"
install_file "$bb" bin/busybox 0755
# The applet names are one NUL-separated table starting "[\0[[\0" in the binary; read it
# there because a foreign-arch busybox cannot run here to --list itself.
off=$(LC_ALL=C grep -m1 -obUaP '\x00\[\x00\[\[\x00' "$bb" | cut -d: -f1) ||
	die "cannot find the applet table in busybox"
off=${off%%$'\n'*}
[[ -n $off ]] || die "cannot find the applet table in busybox"
mapfile -t APPLETS < <(tail -c +"$((off + 2))" "$bb" | head -c 65536 | tr '\0' '\n' | sed '/^$/,$d')
((${#APPLETS[@]} > 100)) || die "busybox applet table looks wrong (${#APPLETS[@]} names)"
for a in "${APPLETS[@]}"; do
	[[ $a != busybox && $a != */* ]] || continue
	ln -sf busybox "$R/bin/$a"
done
for a in sh init ip insmod base64 taskset timeout usleep; do
	[[ -L $R/bin/$a ]] || die "busybox lacks applet $a"
done

# --- dropbear and its shared libraries, from the packages' NEEDED entries
db=$X/$SSH_PKG/usr/sbin/dropbear
[[ -f $db ]] || die "no usr/sbin/dropbear in $SSH_PKG"
install_file "$db" usr/sbin/dropbear 0755
interp=$(readelf -l "$db" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p')
[[ -n $interp ]] || die "dropbear has no program interpreter"
find_lib() { # NAME-or-ABSPATH -> "pkgroot relpath" (final file)
	local want=$1 p hit rel
	for p in "${LIBPKGS[@]}"; do
		if [[ $want == /* ]]; then
			rel=${want#/}
			[[ -e $X/$p/$rel || -L $X/$p/$rel ]] || continue
		else
			hit=$(find "$X/$p" \( -type f -o -type l \) -name "$want" -print -quit)
			[[ -n $hit ]] || continue
			rel=${hit#"$X/$p/"}
		fi
		echo "$X/$p $rel"
		return 0
	done
	return 1
}
declare -A HAVE=()
copy_lib() { # NAME-or-ABSPATH: copy it (as the path it is looked up by) and its NEEDED
	local want=$1 root rel final dest n
	[[ -z ${HAVE[$want]:-} ]] || return 0
	HAVE[$want]=1
	read -r root rel < <(find_lib "$want") || die "shared library $want not found in: ${LIBPKGS[*]}"
	final=$(resolve_in "$root" "$rel") || die "dangling library link $rel in ${root##*/}"
	dest=$rel
	install_file "$root/$final" "$dest" 0755
	for n in $(readelf -d "$root/$final" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do copy_lib "$n"; done
}
copy_lib "$interp"
for n in $(readelf -d "$db" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do copy_lib "$n"; done
log "dropbear libraries: ${!HAVE[*]}"

# --- host key, generated here (generating it in a TCG guest takes minutes)
mkdir -p "$R/etc/dropbear"
dropbearkey -t ed25519 -f "$R/etc/dropbear/dropbear_ed25519_host_key" >/dev/null 2>&1 ||
	die "dropbearkey failed"
chmod 600 "$R/etc/dropbear/dropbear_ed25519_host_key"
HOSTPUB=$(dropbearkey -y -f "$R/etc/dropbear/dropbear_ed25519_host_key" | grep '^ssh-ed25519' |
	awk '{print $1, $2}')
[[ -n $HOSTPUB ]] || die "cannot read the host public key"

# --- the rest of the filesystem
cd "$R"
mkdir -p dev proc sys tmp run root/.ssh sbin usr/bin usr/sbin var/log mnt
: >var/log/lastlog # dropbear records logins here and in utmp/wtmp
: >var/log/wtmp
: >run/utmp
ln -s ../run var/run
chmod 1777 tmp
chmod 700 root root/.ssh
mknod -m 600 dev/console c 5 1
mknod -m 666 dev/null c 1 3
install_file "$SCRIPTDIR/$INIT" init 0755
install_file "$SCRIPTDIR/kvmlab-load.sh" usr/bin/kvmlab-load 0755
ln -s /bin/busybox usr/bin/env
cat >etc/passwd <<'EOF'
root:x:0:0:root:/root:/bin/sh
EOF
cat >etc/shadow <<'EOF'
root:*:19000:0:99999:7:::
EOF
chmod 600 etc/shadow
cat >etc/group <<'EOF'
root:x:0:
tty:x:5:
EOF
echo /bin/sh >etc/shells
echo kvmlab-guest >etc/hostname
cat >etc/profile <<'EOF'
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PS1='\h:\w\$ '
EOF
cat >etc/inittab <<'EOF'
::askfirst:-/bin/sh
::ctrlaltdel:/bin/reboot -f
EOF
cd - >/dev/null

# --- the kernel as QEMU boots it fastest. A vmlinux ELF with a PVH entry note (Xen note type 0x12,
# XEN_ELFNOTE_PHYS32_ENTRY) is loaded by QEMU itself and entered directly, without the bzImage's
# decompressor: under TCG, and in an L2 guest of the nested host (whose every instruction TCG runs
# too), decompressing the xz payload was ~2.7 s of an L2 boot's ~11 s. Debian amd64's bzImage
# carries its kernel as one xz stream; where that or the note is missing, the bzImage is kept.
pvh_vmlinux() { # BZIMAGE OUT: 0 when OUT is a PVH-bootable vmlinux
	local off notes
	off=$(LC_ALL=C grep -abo -m1 $'\xfd''7zXZ' "$1") || return 1
	off=${off%%:*}
	xz -dc --single-stream <(tail -c +$((off + 1)) "$1") >"$2" 2>/dev/null || return 1
	notes=$(readelf -n "$2" 2>/dev/null) || return 1
	grep -Eq '^[[:space:]]+Xen[[:space:]]+0x[0-9a-f]+[[:space:]].*(\(0x00000012\)|PHYS32_ENTRY)' <<<"$notes"
}

# --- outputs: stage, then move into place; the manifest goes last
STAGE=$(mktemp -d "$OUTDIR/.build.XXXXXX")
trap 'rm -rf "$WORK" "$STAGE"' EXIT
KFORMAT=vmlinux
if [[ $KIMAGE == vmlinuz ]]; then
	if pvh_vmlinux "$kimg" "$STAGE/kernel"; then KFORMAT=pvh-vmlinux; else KFORMAT=bzImage; cp "$kimg" "$STAGE/kernel"; fi
else
	cp "$kimg" "$STAGE/kernel"
fi
log "kernel: $KFORMAT ($(du -h "$STAGE/kernel" | cut -f1))"
(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) |
	gzip -9n >"$STAGE/initrd.img"
echo "$HOSTPUB" >"$STAGE/ssh_host_ed25519_key.pub"
{
	echo "{"
	echo "  \"arch\": \"$ARCH\","
	echo "  \"role\": \"$ROLE\","
	echo "  \"kernelPackage\": \"$KPKG\","
	echo "  \"kernelVersion\": \"$KVER\","
	echo "  \"kernelFormat\": \"$KFORMAT\","
	[[ -z $KERNEL_SPEC ]] || echo "  \"kernelSpec\": \"$KERNEL_SPEC\","
	echo "  \"packages\": {"
	sep=
	for p in $(printf '%s\n' "${!VERSION[@]}" | sort); do
		printf '%s    "%s": "%s"' "$sep" "$p" "${VERSION[$p]}"
		sep=$',\n'
	done
	echo
	echo "  },"
	echo "  \"inputsHash\": \"$INPUTS_HASH\","
	echo "  \"builtAt\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\""
	echo "}"
} >"$STAGE/manifest.json"
for f in kernel initrd.img ssh_host_ed25519_key.pub manifest.json; do mv -f "$STAGE/$f" "$OUTDIR/$f"; done
log "done: $OUTDIR ($(du -h "$OUTDIR/initrd.img" | cut -f1) initrd)"
