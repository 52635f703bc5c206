#!/bin/sh
# Builds the self-contained executor bundle: DIR/bin/sbx-executor, DIR/lib/ (the dynamic
# loader and every library ldd lists for the binary) and DIR/shims/. Runs in any root through
# DIR/lib/ld-linux-x86-64.so.2 --library-path DIR/lib DIR/bin/sbx-executor.
# usage: mkbundle.sh BINARY SHIMS_DIR OUT_DIR
set -eu

bin=$1
shims=$2
out=$3

[ -x "$bin" ] || { echo "mkbundle: $bin is not an executable" >&2; exit 1; }
rm -rf "$out.tmp"
mkdir -p "$out.tmp/bin" "$out.tmp/lib" "$out.tmp/shims"
cp "$bin" "$out.tmp/bin/sbx-executor"
chmod 0755 "$out.tmp/bin/sbx-executor"

# "libx.so.1 => /usr/lib/.../libx.so.1 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)"
ldd "$bin" | while read -r a b c _; do
	case "$a" in
	linux-vdso.so.*) continue ;;
	esac
	if [ "$b" = "=>" ]; then
		src=$c
		name=$a
	else
		src=$a
		name=$(basename "$a")
	fi
	case "$src" in
	/*) ;;
	*) echo "mkbundle: cannot resolve '$a' ($src)" >&2; exit 1 ;;
	esac
	cp -L "$src" "$out.tmp/lib/$name"
done
loader=$(ls "$out.tmp/lib" | grep '^ld-linux' | head -n 1)
[ -n "$loader" ] || { echo "mkbundle: no dynamic loader found by ldd" >&2; exit 1; }
[ "$loader" = ld-linux-x86-64.so.2 ] || ln -sf "$loader" "$out.tmp/lib/ld-linux-x86-64.so.2"
cp "$shims"/python_zygote.py "$shims"/node_runner.js "$out.tmp/shims/"
chmod 0644 "$out.tmp/shims/"*
rm -rf "$out"
mv "$out.tmp" "$out"
