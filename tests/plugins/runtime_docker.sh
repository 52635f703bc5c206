#!/bin/bash
# Runs tests/plugins/runtime_docker (the `docker` runtime module) against a real Docker
# Engine. Not part of `make check` (which runs the program itself: it skips without
# SBX_TEST_DOCKER_HOST). Usage, from a build directory, as root:
#
#   top_srcdir=.. top_builddir=. ../tests/plugins/runtime_docker.sh
#
# With SBX_TEST_DOCKER_HOST set (unix://SOCK) that engine is used; otherwise a private
# dockerd is started here (own data/exec roots, no iptables, no bridge; also on
# tcp://127.0.0.1:18100 with TLS client verification, certificates made here with openssl)
# and stopped by PID at exit. The test image sbxd-test-python:latest is made without a registry: a small root
# of the host's own files (merged /usr: python3 and its standard library, sh, tar, and the
# shared libraries they need) imported with `docker import`. TAP on stdout.
set -u
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
prog="$top_builddir/tests/plugins/runtime_docker"
image=sbxd-test-python:latest
work=$(mktemp -d /tmp/docker-rt.XXXXXX) || exit 1
pid=

cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		# overlay mounts left by a dockerd that died uncleanly
		grep -o " $work/[^ ]*" /proc/self/mounts | sort -r | while read -r m; do
			umount -l "$m" 2>/dev/null
		done
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if [ "$(id -u)" != 0 ]; then
	echo "1..0 # SKIP needs root (a private dockerd)"
	exit 0
fi
for t in dockerd docker docker-init python3 tar; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "1..0 # SKIP $t is not installed (Debian: apt-get install docker.io)"
		exit 0
	fi
done

# TLS material for the engine's tcp:// listener: a CA, a server certificate for 127.0.0.1,
# a client certificate, and a second CA that signed neither (the wrong-CA case).
tls="$work/tls"
mkcert() { # name cn ca-name ext
	openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$tls/$1-key.pem" \
		-out "$tls/$1.csr" 2>/dev/null &&
		printf '%s\n' "$4" >"$tls/$1.ext" &&
		openssl x509 -req -in "$tls/$1.csr" -CA "$tls/$3.pem" -CAkey "$tls/$3-key.pem" \
			-CAcreateserial -days 2 -extfile "$tls/$1.ext" -out "$tls/$1.pem" 2>/dev/null
}
mkdir -p "$tls"
cas_ok=yes
for ca in ca other-ca; do
	openssl req -x509 -new -newkey rsa:2048 -nodes -days 2 -subj "/CN=sbxd test $ca" \
		-keyout "$tls/$ca-key.pem" -out "$tls/$ca.pem" 2>/dev/null || cas_ok=no
done
if [ $cas_ok = yes ] && mkcert server 127.0.0.1 ca "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth" && mkcert client sbxd ca "extendedKeyUsage=clientAuth"; then
	chmod 0600 "$tls"/*-key.pem
else
	echo "# openssl could not make test certificates: TLS cases skipped"
	tls=
fi
tls_port=${SBX_TEST_DOCKER_TLS_PORT:-18100}

host=${SBX_TEST_DOCKER_HOST:-}
if [ -z "$host" ]; then
	mkdir -p "$work/dr" "$work/ex"
	set --
	if [ -n "$tls" ]; then
		set -- -H "tcp://127.0.0.1:$tls_port" --tlsverify --tlscacert "$tls/ca.pem" \
			--tlscert "$tls/server.pem" --tlskey "$tls/server-key.pem"
	fi
	dockerd --data-root "$work/dr" --exec-root "$work/ex" --pidfile "$work/dockerd.pid" \
		--iptables=false --ip-masq=false --bridge=none \
		-H "unix://$work/docker.sock" "$@" >"$work/dockerd.log" 2>&1 &
	pid=$!
	i=0
	until docker -H "unix://$work/docker.sock" version >/dev/null 2>&1; do
		if [ $i -ge 150 ] || ! kill -0 "$pid" 2>/dev/null; then
			sed 's/^/# dockerd: /' "$work/dockerd.log" | tail -20
			echo "Bail out! dockerd did not start"
			exit 1
		fi
		sleep 0.1
		i=$((i + 1))
	done
	host="unix://$work/docker.sock"
	echo "# private dockerd pid $pid on $host${tls:+ and tcp://127.0.0.1:$tls_port (TLS)}"
	if [ -n "$tls" ]; then
		export SBX_TEST_DOCKER_TLS_HOST="tcp://127.0.0.1:$tls_port"
		export SBX_TEST_DOCKER_TLS_DIR="$tls"
	fi
fi
export DOCKER_HOST="$host"

# The test image: the host's python3 and what it links, in a merged-/usr root.
if ! docker image inspect "$image" >/dev/null 2>&1; then
	root="$work/root"
	mkdir -p "$root/usr/bin" "$root/usr/lib" "$root/usr/lib64" "$root/usr/sbin" "$root/etc" "$root/tmp" "$root/workspace"
	chmod 1777 "$root/tmp"
	ln -s usr/bin "$root/bin"
	ln -s usr/lib "$root/lib"
	ln -s usr/lib64 "$root/lib64"
	ln -s usr/sbin "$root/sbin"
	py=$(readlink -f /usr/bin/python3)
	pyver=$(basename "$py")
	cp -a "$py" "$root/usr/bin/"
	ln -s "$pyver" "$root/usr/bin/python3"
	for b in dash tar cat ls id env sleep; do
		cp -a "$(command -v $b)" "$root/usr/bin/" 2>/dev/null
	done
	ln -sf dash "$root/usr/bin/sh"
	tar -C / -c --exclude="usr/lib/$pyver/test" --exclude='__pycache__' \
		--exclude="usr/lib/$pyver/idlelib" --exclude="usr/lib/$pyver/tkinter" \
		"usr/lib/$pyver" | tar -C "$root" -x
	# every shared library the copied programs and extension modules need, and the loader
	find "$root/usr/bin" "$root/usr/lib/$pyver/lib-dynload" -type f | while read -r f; do
		ldd "$f" 2>/dev/null | grep -o '/[^ ]*'
	done | sort -u | while read -r l; do
		real=$(readlink -f "$l")
		mkdir -p "$root$(dirname "$l")" "$root$(dirname "$real")"
		[ -e "$root$real" ] || cp -a "$real" "$root$real"
		[ -e "$root$l" ] || ln -s "$real" "$root$l"
	done
	printf 'root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/sh\n' \
		>"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	if ! tar -C "$root" -c . | docker import - "$image" >"$work/import.log" 2>&1; then
		sed 's/^/# docker import: /' "$work/import.log"
		echo "Bail out! could not import the test image"
		exit 1
	fi
	echo "# imported $image ($(du -sm "$root" | cut -f1) MiB root)"
fi

SBX_TEST_DOCKER_HOST="$host" SBX_TEST_DOCKER_IMAGE="$image" \
	SBX_TEST_DOCKER_WORK="$work" "$prog"
