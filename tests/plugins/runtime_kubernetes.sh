#!/bin/sh
# Runs tests/plugins/runtime_kubernetes (the kubernetes runtime module) against
# tests/plugins/k8s_standin.py, a stand-in API server + kubelet (no real Kubernetes can run
# here) that validates every request and starts the real executor bundle of the build tree
# for each pod on its own loopback address. The stand-in is stopped by PID on exit. TAP.
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
prog="$top_builddir/tests/plugins/runtime_kubernetes"
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
if [ -z "$py" ]; then
	echo "1..0 # SKIP python3 is not installed"
	exit 0
fi
bundle=$(cd "$top_builddir/executor/bundle" 2>/dev/null && pwd)
if [ -z "$bundle" ] || [ ! -x "$bundle/bin/sbx-executor" ]; then
	echo "1..0 # SKIP the executor bundle is not built (executor/bundle)"
	exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/sbx-k8stest-XXXXXX") || exit 1
pid=

cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$work/token"
od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$work/forbidden-token"
# A CA and a server certificate for 127.0.0.1, for the HTTPS listener (skipped without openssl).
tls_args=
if command -v openssl >/dev/null 2>&1 &&
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=sbx-test-ca \
		-keyout "$work/ca.key" -out "$work/ca.crt" >/dev/null 2>&1 &&
	openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$work/server.key" \
		-out "$work/server.csr" >/dev/null 2>&1 &&
	printf 'subjectAltName=IP:127.0.0.1\n' >"$work/san.ext" &&
	openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
		-CAcreateserial -days 2 -extfile "$work/san.ext" -out "$work/server.crt" >/dev/null 2>&1; then
	tls_args="--tls-cert $work/server.crt --tls-key $work/server.key"
fi
# A port for the executors: free on 127.0.0.1 now; each pod listens on its own 127.0.0.N.
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$py" "$top_srcdir/tests/plugins/k8s_standin.py" --bundle "$bundle" --token-file "$work/token" \
	--forbidden-token-file "$work/forbidden-token" --namespace sbx-test \
	--workdir "$work" --port-file "$work/port" $tls_args 2>"$work/standin.log" &
pid=$!
i=0
while [ ! -s "$work/port" ] && [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do
	sleep 0.05
	i=$((i + 1))
done
if [ ! -s "$work/port" ]; then
	echo "Bail out! the API stand-in did not start"
	sed 's/^/# /' "$work/standin.log"
	exit 1
fi
read -r http_port https_port <"$work/port"
[ -n "$https_port" ] && export K8S_TLS_SERVER="https://127.0.0.1:$https_port" \
	K8S_TLS_CA="$work/ca.crt"
K8S_SERVER="http://127.0.0.1:$http_port" K8S_TOKEN_FILE="$work/token" \
	K8S_FORBIDDEN_TOKEN_FILE="$work/forbidden-token" K8S_EXECUTOR_PORT=$port \
	K8S_WORKDIR="$work" "$prog"
rc=$?
if [ $rc -ne 0 ]; then
	echo "# stand-in log (last 40 lines):"
	tail -n 40 "$work/standin.log" | sed 's/^/# /'
	for f in "$work"/*.log; do
		[ "$f" = "$work/standin.log" ] || tail -n 5 "$f" | sed "s|^|# $(basename "$f"): |"
	done
fi
exit $rc
