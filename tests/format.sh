#!/bin/sh
# House style: every C file of the tree is in .clang-format style (the frozen ABI 1.0
# headers in tests/abi/frozen-1.0 are a verbatim copy and exempt). TAP, one line a file.
top=${top_srcdir:-.}
if ! command -v clang-format >/dev/null 2>&1; then
	echo "1..0 # SKIP clang-format is not installed"
	exit 0
fi
files=$(cd "$top" && find core executor plugins plugin-sdk tests -name '*.[ch]' \
	-not -path 'tests/abi/frozen-1.0/*' | sort)
n=0
fail=0
for f in $files; do
	n=$((n + 1))
	if (cd "$top" && clang-format --style=file --dry-run -Werror "$f") >/dev/null 2>&1; then
		echo "ok $n - $f is in .clang-format style"
	else
		echo "not ok $n - $f is in .clang-format style (run: clang-format -i $f)"
		fail=1
	fi
done
echo "1..$n"
exit $fail
