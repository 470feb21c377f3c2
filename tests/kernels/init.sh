#!/bin/busybox sh
# Init of the kernel-matrix VM: runs each tool against known loopback traffic, prints one MATRIX line per check.
#
# Lines for the host (tests/kernels/matrix.py), on the serial console:
#   MATRIX-KERNEL <uname -r>
#   MATRIX|<tool>|<hook> <buffer>|ok (<detail>)   or   MATRIX|<tool>|<hook> <buffer>|FAIL: <why>
#   MATRIX-END
# Parameters come from the kernel command line: matrix.conns=N matrix.rounds=R.
# Every wait is bounded; the VM powers off at the end whatever happened.

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
# Output goes to the console only once /dev exists.
exec </dev/null >/dev/console 2>&1
ip link set lo up

CONNS=5
ROUNDS=3
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	matrix.conns=*) CONNS=${arg#*=} ;;
	matrix.rounds=*) ROUNDS=${arg#*=} ;;
	esac
done
T=/tmp/run
PORT=5000
# A pod's uid and a container's id as kubelet and the runtimes write them (--group-by pod).
POD_UID=6f1e2d3c-4b5a-4697-8877-665544332211
CONTAINER_ID=cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc
TRACING=/sys/kernel/tracing
# Every kernel here has tp_btf (5.5+), but the tp_btf programs of the tools that keep
# per-socket state need Linux 5.12 (socket storage in tracing programs came in 5.11,
# compare-and-swap in 5.12): before that they attach with raw_tp. Any other fallback to raw_tp
# without TCPTOOLS_RAW_TP is a failure.
case "$(uname -r)" in
5.[0-9].* | 5.1[01].*) STATEFUL_HOOK=raw_tp ;;
*) STATEFUL_HOOK=tp_btf ;;
esac

echo "MATRIX-KERNEL $(uname -r)"

# report TOOL HOOK_BUFFER RESULT
# On a failure, the tool's last stderr lines (libbpf's own excluded) follow in the log.
# A check run by catchers_only reports as TOOL (catchers only).
report() {
	echo "MATRIX|$1$ONLY|$2|$3"
	case "$3" in
	ok*) ;;
	*) [ -f "$T.$name.err" ] && grep -v '^libbpf: ' "$T.$name.err" | tail -n 20 | sed "s/^/  $name stderr: /" ;;
	esac
}

# Which hook and event buffer the BPF objects of process $1 use, from /proc/PID/fdinfo:
# prog_type 26 is BPF_PROG_TYPE_TRACING (tp_btf), 17 BPF_PROG_TYPE_RAW_TRACEPOINT;
# map_type 27 is BPF_MAP_TYPE_RINGBUF, 4 BPF_MAP_TYPE_PERF_EVENT_ARRAY.
fd_hook() {
	types=$(cat /proc/$1/fdinfo/* 2>/dev/null | sed -n 's/^prog_type:[[:space:]]*//p' | sort -u | tr '\n' ' ')
	case " $types" in
	*" 26 "*" 17 "* | *" 17 "*" 26 "*) echo mixed ;;
	*" 26 "*) echo tp_btf ;;
	*" 17 "*) echo raw_tp ;;
	*) echo "none($types)" ;;
	esac
}
fd_buffer() {
	types=$(cat /proc/$1/fdinfo/* 2>/dev/null | sed -n 's/^map_type:[[:space:]]*//p' | sort -u | tr '\n' ' ')
	case " $types" in
	*" 27 "*" 4 "* | *" 4 "*" 27 "*) echo mixed ;;
	*" 27 "*) echo ringbuf ;;
	*" 4 "*) echo perfbuf ;;
	*) echo "-" ;;
	esac
}

# start NAME ATTACHES CMD...: starts CMD with -v in the background (stdout $T.NAME.out,
# stderr $T.NAME.err) and waits until it has said "attached with" ATTACHES times.
# Sets PID, HOOK (from -v, checked against fdinfo) and BUFFER; returns 1 with WHY set.
start() {
	name=$1 attaches=$2
	shift 2
	# The files exist before the background job runs: the loop below must never read a
	# missing file (a failed test in it would end the wait early).
	: >$T.$name.out
	: >$T.$name.err
	"$@" >>$T.$name.out 2>>$T.$name.err &
	PID=$!
	i=0
	while n=$(grep -c 'attached with' $T.$name.err); [ "${n:-0}" -lt "$attaches" ]; do
		if ! kill -0 $PID 2>/dev/null; then
			wait $PID
			WHY="exited $? before attaching: $(grep -v '^libbpf' $T.$name.err | tail -n 1)"
			return 1
		fi
		i=$((i + 1))
		if [ $i -gt 1200 ]; then
			kill -9 $PID
			WHY="not attached after 120 s"
			return 1
		fi
		sleep 0.1
	done
	said=$(grep -o 'attached with [a-z_]*' $T.$name.err | sed 's/attached with //' | sort -u | tr '\n' ' ')
	said=${said% }
	HOOK=$(fd_hook $PID)
	BUFFER=$(fd_buffer $PID)
	if [ "$said" != "$HOOK" ]; then
		WHY="-v says '$said', fdinfo says '$HOOK'"
		return 1
	fi
	# Each attach is PAIRS main programs (one per tracepoint; the exporter has 2) and their
	# catchers (bpf/nested.bpf.h), as -v names the attached ones; all are loaded, and each
	# attached one is a BPF link in fdinfo. With the catchers alone, no main program attaches.
	want=$((attaches * ${PAIRS:-1}))
	want_mains=$want
	[ -n "$ONLY" ] && want_mains=0
	progs=$(grep '^programs: ' $T.$name.err | tr ',' '\n' | grep -c 'catch_')
	mains=$(grep '^programs: ' $T.$name.err | tr ',' '\n' | grep -vc 'catch_')
	held=$(cat /proc/$PID/fdinfo/* 2>/dev/null | grep -c '^prog_type:')
	links=$(cat /proc/$PID/fdinfo/* 2>/dev/null | grep -c '^link_type:')
	if [ "$progs" -ne "$want" ] || [ "$mains" -ne "$want_mains" ] || [ "$held" -lt $((2 * want)) ] ||
		[ "$links" -ne $((want + want_mains)) ]; then
		WHY="-v names $mains main programs and $progs catchers, fdinfo holds $held programs and $links links; want $want_mains main programs, $want catchers, $((2 * want)) programs, $((want + want_mains)) links"
		kill -9 $PID
		wait $PID
		return 1
	fi
	return 0
}

# catchers_only CHECK VARIANT ENV [ARG]: CHECK with the catchers attached alone
# (TCPTOOLS_CATCHERS_ONLY=1): every event goes through their path, which otherwise runs only
# for the rare events the kernel skips a main program for, and must give the same exact counts.
catchers_only() {
	ONLY=" (catchers only)"
	"$1" "$2" "TCPTOOLS_CATCHERS_ONLY=1${3:+ $3}" $4
	ONLY=
}

# stop SIGNAL: ends $PID with SIGNAL, waits at most 30 s; returns 1 with WHY set unless it exited 0.
stop() {
	kill -$1 $PID
	i=0
	while kill -0 $PID 2>/dev/null && [ $i -lt 300 ]; do
		# A zombie still answers kill -0: wait reaps it below.
		grep -q '^State:[[:space:]]*Z' /proc/$PID/status 2>/dev/null && break
		i=$((i + 1))
		sleep 0.1
	done
	if [ $i -ge 300 ]; then
		kill -9 $PID
		wait $PID
		WHY="still running 30 s after SIG$1"
		return 1
	fi
	wait $PID
	rc=$?
	if [ $rc -ne 0 ]; then
		WHY="exit code $rc after SIG$1: $(grep -v '^libbpf' $T.$name.err | tail -n 1)"
		return 1
	fi
	return 0
}

# want_attach VARIANT WANT_BUFFER: sets WHY unless HOOK and BUFFER are what VARIANT forces
# ("raw": raw_tp, "perf": perf buffer), or else the tool's hook on this kernel and WANT_BUFFER.
want_attach() {
	hook=$STATEFUL_HOOK buffer=$2
	[ "$name" = tcprtt ] && hook=tp_btf
	case "$1" in *raw*) hook=raw_tp ;; esac
	case "$1" in *perf*) buffer=perfbuf ;; esac
	if [ "$HOOK" != "$hook" ] || [ "$BUFFER" != "$buffer" ]; then
		WHY="attached with $HOOK $BUFFER, want $hook $buffer"
	fi
}

# traffic ADDR: CONNS connections of ROUNDS rounds and one refused connect on a fresh port pair.
# Client and server are pinned to one CPU, IPv4 to the first and IPv6 to the last: segments
# of one connection handled on two CPUs at once can make the kernel create the server's
# child socket twice and drop one (LISTEN -> SYN_RECV -> CLOSE), so counts would depend on
# scheduling. The tools still see events on both CPUs.
CPUS=$(nproc)
traffic() {
	traffic_in "" "$1"
}

# traffic_in CGROUP ADDR: traffic run by a process moved into CGROUP first ("": stays put).
traffic_in() {
	PORT=$((PORT + 2))
	case "$2" in *:*) mask=$((1 << (CPUS - 1))) ;; *) mask=1 ;; esac
	if ! sh -c 'cg=$1; shift; [ -z "$cg" ] || echo $$ >"$cg/cgroup.procs"; exec timeout 60 taskset "$@"' - "$1" $mask /bin/traffic "$2" $PORT "$CONNS" "$ROUNDS" $((PORT + 1)) >$T.traffic 2>&1; then
		WHY="traffic on $2 failed: $(cat $T.traffic)"
		return 1
	fi
	return 0
}

# State changes one traffic run makes, as "COUNT OLD NEW" (sorted by sort | uniq -c).
expected_states() {
	n=$1 f=$2 # connections, families
	{
		echo "$f CLOSE LISTEN"
		echo "$f LISTEN CLOSE"
		echo "$((n * f + f)) CLOSE SYN_SENT"
		echo "$((n * f)) SYN_SENT ESTABLISHED"
		echo "$f SYN_SENT CLOSE"
		for t in "ESTABLISHED FIN_WAIT1" "FIN_WAIT1 FIN_WAIT2" "FIN_WAIT2 CLOSE" \
			"LISTEN SYN_RECV" "SYN_RECV ESTABLISHED" "ESTABLISHED CLOSE_WAIT" \
			"CLOSE_WAIT LAST_ACK" "LAST_ACK CLOSE"; do
			echo "$((n * f)) $t"
		done
	} | sort -k2
}

# tcp_probe runs counted by the kernel's own trace event: the reference for tcprtt.
trace_on() {
	echo 0 >$TRACING/tracing_on
	echo >$TRACING/trace
	echo 1 >$TRACING/events/tcp/tcp_probe/enable
	echo 1 >$TRACING/tracing_on
}
# Prints the number of tcp_probe events since trace_on; fails if the trace buffer overran.
trace_count() {
	echo 0 >$TRACING/tracing_on
	echo 0 >$TRACING/events/tcp/tcp_probe/enable
	head -n 5 $TRACING/trace | grep -q 'entries-in-buffer/entries-written: \([0-9]*\)/\1 ' || return 1
	grep -c ' tcp_probe: ' $TRACING/trace
}

# tcpstates VARIANT ENV: every state change of a v4 and a v6 traffic run.
check_tcpstates() {
	WHY= HOOK=? BUFFER=?
	if start tcpstates 1 env $2 /bin/tcpstates -v && traffic 127.0.0.1 && traffic ::1 && sleep 1 &&
		stop INT; then
		# Columns: ... OLDSTATE -> NEWSTATE MS
		awk 'NR > 1 { print $(NF-3), $(NF-1) }' $T.tcpstates.out | sort | uniq -c |
			awk '{ print $1, $2, $3 }' | sort -k2 >$T.got
		expected_states "$CONNS" 2 >$T.want
		total=$(($(wc -l <$T.tcpstates.out) - 1))
		v6=$(awk 'NR > 1 && $4 ~ /:/' $T.tcpstates.out | wc -l)
		if ! cmp -s $T.got $T.want; then
			WHY="state changes differ (count old new; got vs want): $(diff $T.want $T.got | grep '^[-+][0-9]' | tr '\n' ' ')"
		elif [ "$v6" -ne $((CONNS * 10 + 4)) ]; then
			WHY="$v6 IPv6 lines, want $((CONNS * 10 + 4))"
		else
			want_attach "$1" ringbuf
		fi
	fi
	if [ -n "$WHY" ]; then
		report tcpstates "$HOOK $BUFFER" "FAIL: $WHY"
	else
		report tcpstates "$HOOK $BUFFER" "ok ($total events)"
	fi
}

# tcpconnlat VARIANT ENV: one line per connect, the refused ones included.
check_tcpconnlat() {
	WHY= HOOK=? BUFFER=?
	if start tcpconnlat 1 env $2 /bin/tcpconnlat -v && traffic 127.0.0.1 && traffic ::1 && sleep 1 &&
		stop INT; then
		# Columns: PID COMM IP SADDR DADDR DPORT LAT(ms); refused connects go to odd ports.
		total=$(($(wc -l <$T.tcpconnlat.out) - 1))
		refused=$(awk 'NR > 1 && $(NF-1) % 2 == 1' $T.tcpconnlat.out | wc -l)
		v6=$(awk 'NR > 1 && $3 == 6' $T.tcpconnlat.out | wc -l)
		if [ "$total" -ne $((CONNS * 2 + 2)) ] || [ "$refused" -ne 2 ] || [ "$v6" -ne $((CONNS + 1)) ]; then
			WHY="$total connects ($refused refused, $v6 IPv6), want $((CONNS * 2 + 2)) (2 refused, $((CONNS + 1)) IPv6)"
		else
			want_attach "$1" ringbuf
		fi
	fi
	if [ -n "$WHY" ]; then
		report tcpconnlat "$HOOK $BUFFER" "FAIL: $WHY"
	else
		report tcpconnlat "$HOOK $BUFFER" "ok ($total connects, 2 refused)"
	fi
}

# tcprtt VARIANT ENV: the histogram's count equals the tcp_probe events the kernel traced.
check_tcprtt() {
	WHY= HOOK=? BUFFER=?
	if start tcprtt 1 env $2 /bin/tcprtt --json -v && trace_on && traffic 127.0.0.1 &&
		traffic ::1 && sleep 1; then
		probes=$(trace_count) || WHY="trace buffer overran"
		if [ -z "$WHY" ] && stop INT; then
			# The top-level count follows the buckets array.
			got=$(sed -n 's/.*\],"count":\([0-9]*\),.*/\1/p' $T.tcprtt.out | awk '{ s += $1 } END { print s + 0 }')
			lines=$(wc -l <$T.tcprtt.out)
			if [ "$lines" -ne 1 ] || [ "$got" -ne "$probes" ] || [ "$probes" -lt $((CONNS * 2 * ROUNDS)) ]; then
				WHY="histogram count $got in $lines lines, tcp_probe ran $probes times (at least $((CONNS * 2 * ROUNDS)) expected)"
			else
				want_attach "$1" -
			fi
		fi
	fi
	if [ -n "$WHY" ]; then
		report tcprtt "$HOOK $BUFFER" "FAIL: $WHY"
	else
		report tcprtt "$HOOK $BUFFER" "ok ($got samples = $probes tcp_probe runs)"
	fi
}

# metric NAME LABELS: the value of the exporter's sample NAME{LABELS} in the last scrape.
metric() {
	grep -F "$1{$2} " $T.metrics | sed 's/.* //'
}

# exporter VARIANT ENV [GROUP]: the exporter, scraped over IPv4 while the traffic runs over
# IPv6 (the scrape's own connection cannot touch the family="ipv6" series, which must match
# the traffic exactly); with GROUP cgroup, --group-by cgroup and the traffic in /tt/inner;
# with GROUP pod, --group-by pod (no runtime) and the traffic in a container's cgroup of
# kubelet's cgroupfs layout, which the kernel counts by its parent, the pod's cgroup.
check_exporter() {
	WHY= HOOK=? BUFFER=? G= args=
	cg=/sys/fs/cgroup/tt
	inner=$cg/inner
	pod=$cg/kubepods/besteffort/pod$POD_UID
	case "$3" in
	cgroup) G=',cgroup="/tt/inner"' args="--group-by cgroup" ;;
	pod)
		inner=$pod/$CONTAINER_ID
		G=",namespace=\"\",pod=\"$POD_UID\"" args="--group-by pod --runtime-endpoint none"
		;;
	esac
	mkdir -p $inner
	PAIRS=2
	if start exporter 1 env $2 /bin/tcptools-exporter -v -l 127.0.0.1:10187 $args && trace_on &&
		traffic_in "${3:+$inner}" ::1 && sleep 1; then
		probes=$(trace_count) || WHY="trace buffer overran"
		if [ -z "$WHY" ] && timeout 30 wget -q -O $T.metrics http://127.0.0.1:10187/metrics &&
			stop TERM; then
			sed -n 's|^tcp_state_transitions_total{family="ipv6",old_state="\([A-Z_0-9]*\)",new_state="\([A-Z_0-9]*\)"'"$G"'} \([0-9]*\)$|\3 \1 \2|p' \
				$T.metrics | sort -k2 >$T.got
			expected_states "$CONNS" 1 >$T.want
			established=$(metric tcp_connect_attempts_total "family=\"ipv6\",outcome=\"established\"$G")
			refused=$(metric tcp_connect_attempts_total "family=\"ipv6\",outcome=\"refused\"$G")
			latencies=$(metric tcp_connect_latency_seconds_count "family=\"ipv6\",outcome=\"established\"$G")
			rtts=$(metric tcp_rtt_seconds_count "family=\"ipv6\"$G")
			storage=$(sed -n 's/^tcptools_exporter_attach_info{.*socket_storage="\([a-z]*\)"} 1$/\1/p' $T.metrics)
			want=true
			[ "$STATEFUL_HOOK" = raw_tp ] || [ "$1" = raw ] && want=false
			if ! cmp -s $T.got $T.want; then
				WHY="ipv6 transitions differ (count old new; got vs want): $(diff $T.want $T.got | grep '^[-+][0-9]' | tr '\n' ' ')"
			elif [ "$established $refused $latencies" != "$CONNS 1 $CONNS" ]; then
				WHY="ipv6 connects established/refused/timed '$established $refused $latencies', want '$CONNS 1 $CONNS'"
			elif [ "$rtts" != "$probes" ]; then
				WHY="tcp_rtt_seconds_count{ipv6} '$rtts', tcp_probe ran $probes times"
			elif [ "$storage" != "$want" ]; then
				WHY="socket_storage=\"$storage\", want $want"
			else
				want_attach "$1" -
			fi
		elif [ -z "$WHY" ]; then
			WHY="${WHY:-scrape failed}"
			kill -9 $PID
		fi
	fi
	PAIRS=1
	rmdir $inner $pod $cg/kubepods/besteffort $cg/kubepods $cg/inner $cg 2>/dev/null
	name="exporter${3:+ --group-by $3}"
	if [ -n "$WHY" ]; then
		report "$name" "$HOOK $BUFFER" "FAIL: $WHY"
	else
		report "$name" "$HOOK $BUFFER" "ok ($((CONNS * 10 + 4)) transitions, $established+$refused connects, $rtts rtt samples, socket storage $storage)"
	fi
}

# With no vmlinux BTF, each tool must say so in one line on stderr (naming BTF) and exit 1.
check_no_btf() {
	if ! mount -t tmpfs tmpfs /sys/kernel/btf; then
		report no-btf "- -" "FAIL: cannot hide /sys/kernel/btf"
		return
	fi
	name=nobtf
	for tool in tcpstates tcprtt tcpconnlat tcptools-exporter; do
		timeout 60 /bin/$tool >$T.nobtf.out 2>$T.nobtf.err
		rc=$?
		lines=$(wc -l <$T.nobtf.err)
		if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -q BTF $T.nobtf.err; then
			report "$tool" "no BTF" "ok (exit 1: $(cat $T.nobtf.err))"
		else
			report "$tool" "no BTF" "FAIL: exit $rc, $lines stderr lines, BTF named $(grep -c BTF $T.nobtf.err) times: $(head -c 300 $T.nobtf.err | tr '\n' ' ')"
		fi
	done
	umount /sys/kernel/btf
}

# containers VARIANT ENV: tcpstates -c on a cgroup v2 tree, traffic inside and outside it:
# exactly the inside sockets' changes, each with its cgroup path; socket storage (and so
# owners on every line) with tp_btf, the fixed table with raw_tp (Linux 5.10).
check_containers() {
	WHY= HOOK=? BUFFER=?
	cg=/sys/fs/cgroup/tt
	mkdir -p $cg/inner
	if start containers 1 env $2 /bin/tcpstates -v --json -c $cg && traffic_in $cg/inner 127.0.0.1 &&
		traffic 127.0.0.1 && sleep 1 && stop INT; then
		sed -n 's/.*"newstate":"\([A-Z_0-9]*\)","oldstate":"\([A-Z_0-9]*\)".*/\2 \1/p' \
			$T.containers.out | sort | uniq -c | awk '{ print $1, $2, $3 }' | sort -k2 >$T.got
		expected_states "$CONNS" 1 >$T.want
		total=$(wc -l <$T.containers.out)
		inside=$(grep -c '"cgroup":"/tt/inner"' $T.containers.out)
		owned=$(grep -c '"owner_pid":' $T.containers.out)
		storage=storage
		[ "$HOOK" = raw_tp ] && storage=table
		want=storage
		[ "$STATEFUL_HOOK" = raw_tp ] || [ "$1" = raw ] && want=table
		owners_want=0
		[ "$want" = storage ] && owners_want=$total
		if ! cmp -s $T.got $T.want; then
			WHY="state changes differ (count old new; got vs want): $(diff $T.want $T.got | grep '^[-+][0-9]' | tr '\n' ' ')"
		elif [ "$inside" -ne "$total" ]; then
			WHY="$inside of $total lines name cgroup /tt/inner"
		elif [ "$storage" != "$want" ] || [ "$owned" -ne "$owners_want" ]; then
			WHY="per-socket state in $storage with $owned of $total owners, want $want with $owners_want"
		else
			want_attach "$1" ringbuf
		fi
	fi
	rmdir $cg/inner $cg 2>/dev/null
	if [ -n "$WHY" ]; then
		report "tcpstates -c" "$HOOK $BUFFER" "FAIL: $WHY"
	else
		report "tcpstates -c" "$HOOK $BUFFER" "ok ($total events, all in /tt/inner, per-socket state in $storage, $owned owners)"
	fi
}

# connlat_c VARIANT ENV: tcpconnlat -c on a cgroup v2 tree, IPv4 traffic inside and outside
# it: exactly the inside connects, the refused one included, each naming its cgroup.
check_connlat_c() {
	WHY= HOOK=? BUFFER=?
	cg=/sys/fs/cgroup/tt
	mkdir -p $cg/inner
	if start tcpconnlat 1 env $2 /bin/tcpconnlat -v --json -c $cg &&
		traffic_in $cg/inner 127.0.0.1 && traffic 127.0.0.1 && sleep 1 && stop INT; then
		total=$(wc -l <$T.tcpconnlat.out)
		inside=$(grep -c '"cgroup":"/tt/inner"' $T.tcpconnlat.out)
		if [ "$total" -ne $((CONNS + 1)) ] || [ "$inside" -ne "$total" ]; then
			WHY="$total connects, $inside in /tt/inner; want $((CONNS + 1)), all in /tt/inner"
		else
			want_attach "$1" ringbuf
		fi
	fi
	rmdir $cg/inner $cg 2>/dev/null
	if [ -n "$WHY" ]; then
		report "tcpconnlat -c" "$HOOK $BUFFER" "FAIL: $WHY"
	else
		report "tcpconnlat -c" "$HOOK $BUFFER" "ok ($total connects, all in /tt/inner)"
	fi
}

# rtt_c VARIANT ENV: tcprtt -c on a cgroup v2 tree: IPv4 traffic outside it, then inside it
# while the kernel's trace counts tcp_probe: the histogram counts exactly the inside runs.
check_rtt_c() {
	WHY= HOOK=? BUFFER=?
	cg=/sys/fs/cgroup/tt
	mkdir -p $cg/inner
	if start tcprtt 1 env $2 /bin/tcprtt --json -v -c $cg && traffic 127.0.0.1 && trace_on &&
		traffic_in $cg/inner 127.0.0.1 && sleep 1; then
		probes=$(trace_count) || WHY="trace buffer overran"
		if [ -z "$WHY" ] && stop INT; then
			got=$(sed -n 's/.*\],"count":\([0-9]*\),.*/\1/p' $T.tcprtt.out | awk '{ s += $1 } END { print s + 0 }')
			lines=$(wc -l <$T.tcprtt.out)
			if [ "$lines" -ne 1 ] || [ "$got" -ne "$probes" ] || [ "$probes" -lt $((CONNS * ROUNDS)) ]; then
				WHY="histogram count $got in $lines lines, tcp_probe ran $probes times inside (at least $((CONNS * ROUNDS)) expected)"
			else
				want_attach "$1" -
			fi
		fi
	fi
	rmdir $cg/inner $cg 2>/dev/null
	if [ -n "$WHY" ]; then
		report "tcprtt -c" "$HOOK $BUFFER" "FAIL: $WHY"
	else
		report "tcprtt -c" "$HOOK $BUFFER" "ok ($got samples = $probes tcp_probe runs inside)"
	fi
}

if [ ! -e /sys/kernel/btf/vmlinux ]; then
	report setup "- -" "FAIL: this kernel has no /sys/kernel/btf/vmlinux"
elif [ ! -e $TRACING/events/tcp/tcp_probe/enable ]; then
	report setup "- -" "FAIL: no tcp:tcp_probe trace event in $TRACING"
else
	# What a kernel without tp_btf (< 5.5) or ring buffer (< 5.8) would run is forced with
	# TCPTOOLS_RAW_TP=1 and TCPTOOLS_PERF_BUFFER=1.
	check_tcpstates btf ""
	check_tcpstates perf TCPTOOLS_PERF_BUFFER=1
	check_tcpstates raw TCPTOOLS_RAW_TP=1
	check_tcpstates "raw perf" "TCPTOOLS_RAW_TP=1 TCPTOOLS_PERF_BUFFER=1"
	check_tcpconnlat btf ""
	check_tcpconnlat "raw perf" "TCPTOOLS_RAW_TP=1 TCPTOOLS_PERF_BUFFER=1"
	check_tcprtt btf ""
	check_tcprtt raw TCPTOOLS_RAW_TP=1
	check_exporter btf ""
	check_exporter raw TCPTOOLS_RAW_TP=1
	check_exporter btf "" cgroup
	check_exporter btf "" pod
	check_containers btf ""
	check_containers raw TCPTOOLS_RAW_TP=1
	check_connlat_c btf ""
	check_connlat_c raw TCPTOOLS_RAW_TP=1
	check_rtt_c btf ""
	check_rtt_c raw TCPTOOLS_RAW_TP=1
	catchers_only check_tcpstates btf ""
	catchers_only check_tcpstates raw TCPTOOLS_RAW_TP=1
	catchers_only check_tcpconnlat btf ""
	catchers_only check_tcprtt btf ""
	catchers_only check_exporter btf ""
	check_no_btf
fi
echo MATRIX-END
sync
poweroff -f
