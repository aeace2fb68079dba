# world.sh - the loopback test world of the integration and end-to-end tests (bash library).
#
# A test script sources this file and calls world_enter "$@" first: the script re-runs itself in
# a private network + mount namespace (unshare --net --mount --fork, as root), where only loopback
# exists, /etc/resolv.conf points at a dnsmasq on 127.0.0.1:53 and /etc/hosts is minimal. Every
# daemon started through world_* is killed when the script exits. No traffic ever leaves the
# namespace.
#
# API (stable; other test scripts are built on it):
#   world_enter "$@"          first line after sourcing. Outside: re-exec the script in the
#                             namespaces with WORLD_INSIDE=1. Inside: lo up, WORLD=$(mktemp -d)
#                             (mode 755), $WORLD/resolv.conf (nameserver 127.0.0.1) and
#                             $WORLD/hosts bind-mounted over /etc, an EXIT trap that stops every
#                             daemon started by world_* and removes $WORLD (WORLD_KEEP=1 keeps it;
#                             WORLD_VERBOSE=1 prints the logs of $WORLD/*.log on a failing exit).
#                             Exports WORLD, WORLD_LIB (this directory), BUILD (default:
#                             <repo>/build, made absolute).
#   world_addr ADDR           make ADDR local: nothing for 127.0.0.0/8 and ::1, otherwise
#                             `ip addr add ADDR/32|/128 dev lo` (e.g. fd00::10 for IPv6 tests).
#   world_pki                 test CA in $WORLD/pki (ca.pem, ca.key) and a second, untrusted CA
#                             (evil-ca.pem, evil-ca.key). ECDSA P-256, about 0.1 s.
#   world_cert NAME [--expired] [--ca evil] [--san "DNS:a,DNS:b"] [--cn-only] [--cn CN]
#                             leaf for NAME: $WORLD/pki/NAME.pem, NAME.key, NAME.chain.pem
#                             (leaf + issuing CA). Default SAN DNS:NAME, CN NAME. --cn-only: no
#                             SAN at all. --expired: valid 2020-01-01..2020-02-01. Keys 0644.
#   world_dns_start ARGS...   dnsmasq on 127.0.0.1:53 with --no-resolv --no-hosts --local=/test/
#                             --bind-interfaces --log-queries plus ARGS (--txt-record=...,
#                             --host-record=..., --mx-host=..., --cname=...), log in
#                             $WORLD/dnsmasq.log; returns once it answers queries.
#   world_dns_restart ARGS... stop the running dnsmasq and start it with the new ARGS.
#   world_dns_stop
#   world_https_start ADDR CERTNAME DOCROOT [PORT]
#                             tests/lib/https_server.py on ADDR:PORT (default 443) with
#                             $WORLD/pki/CERTNAME.chain.pem; returns once it listens. Sets
#                             WORLD_PID. Log $WORLD/https-ADDR.log, requests received in
#                             $WORLD/https-ADDR.requests. DOCROOT/.behaviour picks special answers
#                             (see https_server.py). Must not be called inside $(...).
#   world_https_stop ADDR
#   world_bg NAME CMD...      start any daemon in the background, output in $WORLD/NAME.log,
#                             stopped at exit; sets WORLD_PID. Must not be called inside $(...).
#   world_stop PID            stop one daemon started by world_* (TERM, then KILL after 2 s).
#   world_wait_tcp ADDR PORT [SECONDS]   wait until ADDR:PORT accepts TCP (default 5 s).
#   world_ok DESC / world_not_ok DESC [DETAIL]   print "ok - DESC" / "not ok - DESC" (counted)
#   world_check DESC CMD...   run CMD; ok if it exits 0
#   world_finish              print "# N ok, N not ok" and exit 1 if anything was not ok
#
# Requires root, util-linux unshare, iproute2, dnsmasq-base, openssl, /usr/bin/python3.

WORLD_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORLD_PIDS=()
WORLD_OK=0
WORLD_NOT_OK=0
declare -A WORLD_HTTPS_PIDS=()
WORLD_DNS_PID=

world_enter() {
	if [ "${WORLD_INSIDE:-}" != 1 ]; then
		local script
		script=$(readlink -f "$0")
		if [ "$(id -u)" != 0 ]; then
			echo "world.sh: needs root (unshare --net --mount)" >&2
			exit 1
		fi
		exec unshare --net --mount --fork env WORLD_INSIDE=1 bash "$script" "$@"
	fi
	set -u
	: "${BUILD:=$(cd "$WORLD_LIB/../.." && pwd)/build}"
	BUILD=$(cd "$BUILD" 2>/dev/null && pwd || echo "$BUILD")
	export BUILD WORLD_LIB
	mount --make-rprivate / 2>/dev/null || true
	ip link set lo up || { echo "world.sh: cannot bring lo up" >&2; exit 1; }
	WORLD=$(mktemp -d /tmp/world.XXXXXX)
	chmod 755 "$WORLD"
	export WORLD
	trap world_cleanup EXIT
	trap 'exit 130' INT TERM
	echo "nameserver 127.0.0.1" > "$WORLD/resolv.conf"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$WORLD/hosts"
	chmod 644 "$WORLD/resolv.conf" "$WORLD/hosts"
	mount --bind "$WORLD/resolv.conf" /etc/resolv.conf || { echo "world.sh: mount resolv.conf" >&2; exit 1; }
	mount --bind "$WORLD/hosts" /etc/hosts || { echo "world.sh: mount hosts" >&2; exit 1; }
}

world_cleanup() {
	local rc=$? pid f
	trap - EXIT
	for pid in "${WORLD_PIDS[@]+"${WORLD_PIDS[@]}"}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${WORLD_PIDS[@]+"${WORLD_PIDS[@]}"}"; do
		world__reap "$pid"
	done
	if [ "$rc" != 0 ] && [ "${WORLD_VERBOSE:-}" = 1 ]; then
		for f in "$WORLD"/*.log; do
			[ -f "$f" ] || continue
			echo "----- $f"
			tail -n 100 "$f"
		done
	fi
	if [ "${WORLD_KEEP:-}" = 1 ]; then
		echo "world kept in $WORLD" >&2
	else
		case $WORLD in /tmp/world.*) rm -rf "$WORLD" ;; esac
	fi
	exit "$rc"
}

# Wait up to 2 s for pid to die after a TERM, then KILL it.
world__reap() {
	local pid=$1 i
	for i in $(seq 1 40); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

world__forget() {
	local pid=$1 p keep=()
	for p in "${WORLD_PIDS[@]+"${WORLD_PIDS[@]}"}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	WORLD_PIDS=("${keep[@]+"${keep[@]}"}")
}

world_stop() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null
	world__reap "$pid"
	world__forget "$pid"
}

world_bg() {
	local name=$1; shift
	"$@" >> "$WORLD/$name.log" 2>&1 &
	WORLD_PID=$!
	WORLD_PIDS+=("$WORLD_PID")
}

world_addr() {
	local a=$1
	case $a in
	127.*|::1) return 0 ;;
	*:*) ip -6 addr show dev lo | grep -q " $a/" || ip -6 addr add "$a/128" dev lo nodad ;;
	*) ip -4 addr show dev lo | grep -q " $a/" || ip addr add "$a/32" dev lo ;;
	esac
}

world_wait_tcp() {
	local addr=$1 port=$2 secs=${3:-5} i
	for i in $(seq 1 $((secs * 50))); do
		if (exec 3<>"/dev/tcp/$addr/$port") 2>/dev/null; then return 0; fi
		sleep 0.02
	done
	echo "world.sh: nothing listens on $addr:$port after ${secs}s" >&2
	return 1
}

# ---- PKI ------------------------------------------------------------------------------------

world__ca() {  # NAME SUBJECT
	local d=$WORLD/pki/$1.d
	mkdir -p "$d/new"
	: > "$d/index.txt"
	echo 1000 > "$d/serial"
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$WORLD/pki/$1.key" -out "$WORLD/pki/$1.pem" -days 30 -subj "/CN=$2" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>>"$WORLD/pki/openssl.log" || return 1
	cat > "$d/ca.cnf" <<-EOF
	[ ca ]
	default_ca = test_ca
	[ test_ca ]
	database = $d/index.txt
	new_certs_dir = $d/new
	serial = $d/serial
	certificate = $WORLD/pki/$1.pem
	private_key = $WORLD/pki/$1.key
	default_md = sha256
	default_days = 30
	policy = any
	unique_subject = no
	copy_extensions = none
	[ any ]
	commonName = supplied
	EOF
}

world_pki() {
	mkdir -p "$WORLD/pki"
	world__ca ca "World Test CA" || return 1
	world__ca evil-ca "Untrusted Test CA" || return 1
	chmod 644 "$WORLD"/pki/*.key
}

world_cert() {
	local name=$1; shift
	local ca=ca san="DNS:$name" cn=$name cn_only=0 dates=(-days 30)
	while [ $# -gt 0 ]; do
		case $1 in
		--expired) dates=(-startdate 20200101000000Z -enddate 20200201000000Z) ;;
		--ca) [ "$2" = evil ] && ca=evil-ca || ca=$2; shift ;;
		--san) san=$2; shift ;;
		--cn) cn=$2; shift ;;
		--cn-only) cn_only=1 ;;
		*) echo "world_cert: unknown option $1" >&2; return 1 ;;
		esac
		shift
	done
	local p=$WORLD/pki/$name
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature"
		echo "extendedKeyUsage=serverAuth"
		[ "$cn_only" = 1 ] || echo "subjectAltName=$san"
	} > "$p.ext"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$p.key" -out "$p.csr" -subj "/CN=$cn" 2>>"$WORLD/pki/openssl.log" || return 1
	openssl ca -batch -notext -config "$WORLD/pki/$ca.d/ca.cnf" -in "$p.csr" -out "$p.pem" \
		-extfile "$p.ext" "${dates[@]}" >>"$WORLD/pki/openssl.log" 2>&1 || {
		echo "world_cert: openssl ca failed, see $WORLD/pki/openssl.log" >&2; return 1; }
	cat "$p.pem" "$WORLD/pki/$ca.pem" > "$p.chain.pem"
	chmod 644 "$p.key" "$p.pem" "$p.chain.pem"
}

# ---- DNS ------------------------------------------------------------------------------------

# Ask 127.0.0.1:53 anything until an answer comes back (any rcode), for up to 5 s.
world__dns_wait() {
	/usr/bin/python3 - <<-'EOF'
	import socket, time
	q = bytes.fromhex("abcd01000001000000000000") + b"\x05ready\x05world\x04test\x00" + b"\x00\x01\x00\x01"
	end = time.time() + 5
	while time.time() < end:
	    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	    s.settimeout(0.1)
	    try:
	        s.sendto(q, ("127.0.0.1", 53))
	        if s.recv(512)[:2] == b"\xab\xcd":
	            raise SystemExit(0)
	    except OSError:
	        time.sleep(0.02)
	    finally:
	        s.close()
	raise SystemExit(1)
	EOF
}

world_dns_start() {
	world_bg dnsmasq dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
		--user=root --group=root --pid-file="$WORLD/dnsmasq.pid" \
		--listen-address=127.0.0.1 --bind-interfaces --port=53 --local=/test/ \
		--log-queries --log-facility="$WORLD/dnsmasq.log" "$@"
	WORLD_DNS_PID=$WORLD_PID
	if ! world__dns_wait; then
		echo "world_dns_start: dnsmasq does not answer (see $WORLD/dnsmasq.log)" >&2
		return 1
	fi
}

world_dns_stop() {
	[ -n "$WORLD_DNS_PID" ] || return 0
	world_stop "$WORLD_DNS_PID"
	WORLD_DNS_PID=
}

world_dns_restart() {
	world_dns_stop
	world_dns_start "$@"
}

# ---- HTTPS ----------------------------------------------------------------------------------

world_https_start() {
	local addr=$1 cert=$2 docroot=$3 port=${4:-443} i
	world_addr "$addr" || return 1
	local tag=${addr//:/_}
	rm -f "$WORLD/https-$tag.ready"
	world_bg "https-$tag" /usr/bin/python3 "$WORLD_LIB/https_server.py" "$addr" "$port" \
		"$WORLD/pki/$cert.chain.pem" "$WORLD/pki/$cert.key" "$docroot" \
		--ready "$WORLD/https-$tag.ready" --requests "$WORLD/https-$tag.requests"
	WORLD_HTTPS_PIDS[$addr]=$WORLD_PID
	for i in $(seq 1 250); do
		[ -s "$WORLD/https-$tag.ready" ] && return 0
		kill -0 "$WORLD_PID" 2>/dev/null || break
		sleep 0.02
	done
	echo "world_https_start: server on $addr:$port did not start (see $WORLD/https-$tag.log)" >&2
	return 1
}

world_https_stop() {
	local addr=$1
	local pid=${WORLD_HTTPS_PIDS[$addr]:-}
	[ -n "$pid" ] || return 0
	world_stop "$pid"
	unset "WORLD_HTTPS_PIDS[$addr]"
}

# ---- test output ----------------------------------------------------------------------------

world_ok() {
	WORLD_OK=$((WORLD_OK + 1))
	echo "ok - $1"
}

world_not_ok() {
	WORLD_NOT_OK=$((WORLD_NOT_OK + 1))
	echo "not ok - $1"
	[ $# -lt 2 ] || printf '#   %s\n' "$2"
}

world_check() {
	local desc=$1; shift
	if "$@"; then world_ok "$desc"; else world_not_ok "$desc" "command failed: $*"; fi
}

world_finish() {
	echo "# $WORLD_OK ok, $WORLD_NOT_OK not ok"
	[ "$WORLD_NOT_OK" -eq 0 ] || exit 1
	exit 0
}
