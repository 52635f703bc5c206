#!/usr/bin/env bash
# Builds the sandbox images of the default templates (etc/sbxd.conf.in) into a Docker
# engine without any registry: one Debian root made by debootstrap from the mirror this
# machine's apt sources name (read at run time), python3 / nodejs added with apt inside it,
# each root imported with `docker import`. See etc/images/README.md.
#
#   etc/images/build.sh [--docker-host unix:///path/docker.sock] [--only python|nodejs|shell]
#                       [--force] [--cache-dir DIR] [--mirror URL] [--suite NAME]
#
# The image roots are cached as tarballs under the cache directory, keyed by this script's
# content (and the suite and architecture): a second run only imports (or, when the engine
# already has images of the same key, does nothing).
set -euo pipefail

usage() {
	sed -n '/^#   etc/,/^#   *\[--force/p' "$0" | sed 's/^# //'
	exit "${1:-2}"
}

die() {
	echo "build.sh: $*" >&2
	exit 1
}

host=${DOCKER_HOST:-}
only=()
force=0
cache=${SBXD_IMAGES_CACHE:-/var/cache/sbxd-images}
mirror=
suite=bookworm
while [ $# -gt 0 ]; do
	case "$1" in
	--docker-host) host=${2:?--docker-host needs unix:///path or tcp://host:port}; shift ;;
	--docker-host=*) host=${1#*=} ;;
	--only) only+=("${2:?--only needs python, nodejs or shell}"); shift ;;
	--only=*) only+=("${1#*=}") ;;
	--force) force=1 ;;
	--cache-dir) cache=${2:?--cache-dir needs a directory}; shift ;;
	--cache-dir=*) cache=${1#*=} ;;
	--mirror) mirror=${2:?--mirror needs a Debian mirror URL}; shift ;;
	--mirror=*) mirror=${1#*=} ;;
	--suite) suite=${2:?--suite needs a Debian suite name}; shift ;;
	--suite=*) suite=${1#*=} ;;
	-h | --help) usage 0 ;;
	*) echo "build.sh: unknown option '$1'" >&2; usage ;;
	esac
	shift
done

# The images, as the templates of etc/sbxd.conf.in name them: variant, image name, packages.
declare -A image=(
	[shell]=sandbox-template-shell-basic:latest
	[python]=sandbox-template-python-basic:latest
	[nodejs]=sandbox-template-nodejs-basic:latest
)
declare -A packages=([shell]="" [python]="python3" [nodejs]="nodejs")
[ ${#only[@]} -gt 0 ] || only=(shell python nodejs)
for v in "${only[@]}"; do
	[ -n "${image[$v]+x}" ] || die "--only '$v': expected python, nodejs or shell"
done
case "$suite" in
*[!a-z0-9-]* | "") die "--suite '$suite': expected a Debian suite name such as bookworm" ;;
esac

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and chroot need it)"
command -v docker >/dev/null || die "the docker client is not installed (apt-get install docker.io)"
docker_cmd=(docker)
[ -n "$host" ] && docker_cmd+=(-H "$host")
dk() { "${docker_cmd[@]}" "$@"; }
dk version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
	die "cannot reach the Docker engine${host:+ at $host} (is dockerd running? --docker-host or DOCKER_HOST)"

arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
key=$( (cat "$0"; echo "$suite $arch") | sha256sum | cut -c1-16)
label=org.sbxd.images.key
kdir=$cache/$key

# Images already in the engine with this key need nothing.
wanted=()
for v in "${only[@]}"; do
	have=$(dk image inspect -f "{{index .Config.Labels \"$label\"}}" "${image[$v]}" 2>/dev/null || true)
	if [ "$force" = 1 ] || [ "$have" != "$key" ]; then
		wanted+=("$v")
	else
		echo "${image[$v]}: up to date (key $key)"
	fi
done
[ ${#wanted[@]} -gt 0 ] || exit 0

mkdir -p "$kdir"
exec 9>"$cache/.lock"
flock 9 # one build at a time per cache directory

# ---- the mirror, from this machine's apt sources ---------------------------------------
# Prints "URI SUITE" for every enabled deb source of SUITE, SUITE-updates, SUITE-security
# with component main: deb822 files (sources.list.d/*.sources) and one-line lists.
apt_sources() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v s="$suite" '
		function flush(   i, j, nu, ns, u, x, ok) {
			if (types ~ /(^| )deb( |$)/ && enabled != "no" && comps ~ /(^| )main( |$)/) {
				nu = split(uris, u, " "); ns = split(suites, x, " ")
				for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
					if (x[j] == s || x[j] == s "-updates" || x[j] == s "-security")
						print u[i], x[j]
			}
			types = uris = suites = comps = enabled = ""
		}
		/^[ \t]*#/ { next }
		/^[ \t]*$/ { flush(); next }
		{
			k = tolower($1); sub(/:$/, "", k); v = $0; sub(/^[^:]*:[ \t]*/, "", v)
			if (k == "types") types = v; else if (k == "uris") uris = v
			else if (k == "suites") suites = v; else if (k == "components") comps = v
			else if (k == "enabled") enabled = tolower(v)
		}
		END { flush() }' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk -v s="$suite" '
		$1 == "deb" {
			i = 2
			if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
			uri = $i; su = $(i + 1); main = 0
			for (j = i + 2; j <= NF; j++) if ($j == "main") main = 1
			if (main && (su == s || su == s "-updates" || su == s "-security")) print uri, su
		}' "$f"
	done
}
if [ -n "$mirror" ]; then # an explicit mirror is the image's only source
	sources="$mirror $suite"
else
	sources=$(apt_sources | awk '$1 ~ /^(https?|file):/' | awk '!seen[$0]++')
fi
if [ -z "$mirror" ]; then
	mirror=$(printf '%s\n' "$sources" | awk -v s="$suite" '$2 == s { print $1; exit }')
	[ -n "$mirror" ] || die "no enabled 'deb' source for suite $suite with component main in \
/etc/apt/sources.list or /etc/apt/sources.list.d/: pass --mirror URL (a Debian mirror)"
fi
[ -n "$sources" ] || sources="$mirror $suite"

# ---- build the roots (cached) ------------------------------------------------------------
build=()
for v in "${wanted[@]}"; do
	if [ "$force" = 1 ] || [ ! -s "$kdir/$v.tar" ]; then build+=("$v"); fi
done

tmp=
cleanup() {
	[ -n "$tmp" ] || return 0
	local m
	for m in $(awk -v t="$tmp/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT

in_root() { # DIR COMMAND...: run in the root with /proc mounted
	local r=$1
	shift
	mount -t proc proc "$r/proc"
	local rc=0
	chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		LC_ALL=C "$@" || rc=$?
	umount "$r/proc"
	return $rc
}

slim() { # DIR: what an image does not need (apt state, caches, docs, logs)
	local r=$1
	in_root "$r" apt-get clean
	rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/debconf/*-old \
		"$r"/var/log/*.log "$r"/var/log/apt/* "$r"/usr/share/doc/* "$r"/usr/share/man/* \
		"$r"/usr/share/info/* "$r"/usr/share/locale/* "$r"/tmp/* "$r"/var/tmp/* \
		"$r"/root/.cache
	find "$r/usr/lib" -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
}

if [ ${#build[@]} -gt 0 ]; then
	command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/sbxd-images.XXXXXX")
	base=$tmp/base
	t0=$SECONDS
	echo "debootstrap --variant=minbase $suite from $mirror ..."
	keyring=()
	[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] &&
		keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
	debootstrap --variant=minbase --components=main "${keyring[@]}" "$suite" "$base" "$mirror" \
		>"$tmp/debootstrap.log" 2>&1 || {
		tail -20 "$tmp/debootstrap.log" >&2
		die "debootstrap of $suite from $mirror failed (log above)"
	}
	echo "  debootstrap: $((SECONDS - t0)) s"

	# apt sources of the image: the same mirrors as this machine (updates, security).
	printf '%s\n' "$sources" | awk '{ print "deb", $1, $2, "main" }' >"$base/etc/apt/sources.list"
	# The unprivileged user the runtimes run sandboxes as (same as the linux runtime).
	grep -q '^sandbox:' "$base/etc/passwd" ||
		echo 'sandbox:x:1000:1000:sandbox:/workspace:/bin/sh' >>"$base/etc/passwd"
	grep -q '^sandbox:' "$base/etc/group" || echo 'sandbox:x:1000:' >>"$base/etc/group"
	grep -q '^sandbox:' "$base/etc/shadow" || echo 'sandbox:!:19000::::::' >>"$base/etc/shadow"
	# Mount points: workspace, the executor bundle and its socket directory.
	mkdir -p "$base/workspace" "$base/opt/sbx" "$base/run/sbx"
	chown 1000:1000 "$base/workspace"

	t1=$SECONDS
	extra=$(for v in "${build[@]}"; do echo "${packages[$v]}"; done | xargs)
	in_root "$base" apt-get update -q >"$tmp/apt.log" 2>&1 &&
		in_root "$base" apt-get -y -q upgrade >>"$tmp/apt.log" 2>&1 || {
		tail -20 "$tmp/apt.log" >&2
		die "apt-get update/upgrade in the image root failed (log above)"
	}
	if [ -n "$extra" ]; then # fetched once, installed in each derived root from the cache
		in_root "$base" apt-get -y -q -d --no-install-recommends install $extra \
			>>"$tmp/apt.log" 2>&1 || {
			tail -20 "$tmp/apt.log" >&2
			die "downloading $extra failed (log above)"
		}
	fi
	echo "  apt update, upgrade, download ($extra): $((SECONDS - t1)) s"

	for v in "${build[@]}"; do
		t1=$SECONDS
		root=$tmp/$v
		cp -a "$base" "$root"
		if [ -n "${packages[$v]}" ]; then
			in_root "$root" apt-get -y -q --no-install-recommends install ${packages[$v]} \
				>>"$tmp/apt.log" 2>&1 || {
				tail -20 "$tmp/apt.log" >&2
				die "apt-get install ${packages[$v]} failed (log above)"
			}
		fi
		slim "$root"
		tar --numeric-owner --xattrs -C "$root" -cf "$kdir/$v.tar.part" .
		mv "$kdir/$v.tar.part" "$kdir/$v.tar"
		rm -rf --one-file-system "$root"
		echo "  root $v: $((SECONDS - t1)) s, $(du -m "$kdir/$v.tar" | cut -f1) MB"
	done
fi

# ---- import ------------------------------------------------------------------------------
for v in "${wanted[@]}"; do
	[ -s "$kdir/$v.tar" ] || die "no cached root for $v in $kdir (run with --force)"
	t1=$SECONDS
	dk import \
		--change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
		--change 'WORKDIR /workspace' \
		--change 'USER 1000:1000' \
		--change "LABEL $label=$key" \
		--change 'CMD ["/bin/bash"]' \
		"$kdir/$v.tar" "${image[$v]}" >/dev/null ||
		die "docker import of ${image[$v]} failed"
	size=$(dk image inspect -f '{{.Size}}' "${image[$v]}")
	echo "${image[$v]}: imported in $((SECONDS - t1)) s, $((size / 1000000)) MB (key $key)"
done
# Older cache generations (other keys) are removed.
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -exec rm -rf {} + 2>/dev/null || true
