#!/usr/bin/env bash
# Load benchmark of the two_factor gate on loopback, against Caddy's own
# respond without authentication and with basic_auth (and its hash cache),
# measured in the same run, alternating, median of ROUNDS. See README.md.
#
#   bench/run.sh              # the comparison and the sign-in storm, ~4.5 min
#   SCALE=1 bench/run.sh      # also 1,000 vs 1,000,000 stored sessions, ~7.5 min
#   REDIS=0 bench/run.sh      # without the Redis store (on by default when
#                             # redis-server is installed)
#
# Settings (environment): ROUNDS=5, DURATION=5s per wrk run, CONNS=32,
# THREADS=1 (wrk threads), STORM=1 (0 skips the sign-in storm), FLOOD=1 (0
# skips the flood of refused sign-ins on one locked account), SCALE=0,
# REDIS=1 if redis-server is installed (1 installs it if missing: a
# two_factor on `store redis` in the comparison, then sign-in latency and
# revocation propagation), REDIS_AOF=everysec (its appendfsync: everysec,
# always, or off for no AOF), SIGNINS=100 (sign-ins timed per store),
# PORT=18080 (the first of the ports used, all on 127.0.0.1; redis-server
# takes the first free one from PORT+20).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
STORM=${STORM:-1}
FLOOD=${FLOOD:-1}
SCALE=${SCALE:-0}
PORT=${PORT:-18080}
REDIS=${REDIS:-$(command -v redis-server >/dev/null && echo 1 || echo 0)}
SIGNINS=${SIGNINS:-100}
REDIS_AOF=${REDIS_AOF:-everysec}

if ! command -v wrk >/dev/null; then
	echo "Installing wrk from Debian's packages." >&2
	apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi
if [ "$REDIS" = 1 ] && ! command -v redis-server >/dev/null; then
	echo "Installing redis-server from Debian's packages." >&2
	apt-get update -qq >/dev/null && apt-get install -y -qq redis-server >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "Building cmd/caddy and the helpers…" >&2
go build -o "$work/caddy" ./cmd/caddy
go build -o "$work/signin" ./bench/signin
go build -o "$work/storm" ./bench/storm
go build -o "$work/seed" ./bench/seed
go build -o "$work/propagate" ./bench/propagate

password=bench-password
hash=$("$work/caddy" hash-password --plaintext "$password")
body="hello from behind the gate"

# start NAME PORT DIRECTIVES [ADMIN]: runs a Caddy with one site answering
# $body behind DIRECTIVES, and its admin endpoint at ADMIN (default off),
# and waits until it answers.
start() {
	local name=$1 port=$2 directives=$3 admin=${4:-off}
	cat >"$work/$name.Caddyfile" <<-EOF
		{
			admin $admin
			persist_config off
			auto_https off
			log {
				level ERROR
			}
		}
		http://127.0.0.1:$port {
			$directives
			respond "$body" 200
		}
	EOF
	"$work/caddy" run --config "$work/$name.Caddyfile" --adapter caddyfile >"$work/$name.log" 2>&1 &
	pids+=($!)
	eval "pid_$name=$!"
	local i
	for i in $(seq 200); do
		if curl -s -o /dev/null "http://127.0.0.1:$port/"; then return; fi
		sleep 0.05
	done
	echo "$name did not start:" >&2
	cat "$work/$name.log" >&2
	exit 1
}

# rss PID: resident memory now, and the private part of it (what is not
# pages of the binary or of the mmapped database file).
rss() { awk '/^VmRSS/ {r = $2} /^RssAnon/ {a = $2} END {printf "%.0f MB (%.0f private)", r/1024, a/1024}' "/proc/$1/status"; }
hwm() { awk '/^VmHWM/ {printf "%.0f MB", $2/1024}' "/proc/$1/status"; }

# us converts a wrk latency (1.23ms, 456.00us, 1.02s) to microseconds.
us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else print n*1000000 }'; }

# load NAME URL [wrk options…]: one wrk run; appends "rps p50 p99" to
# $work/NAME.results.
load() {
	local name=$1 url=$2
	shift 2
	local out
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@" "$url")
	local rps p50 p99 non2xx
	rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
	p50=$(us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
	p99=$(us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
	non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
	echo "$rps $p50 $p99 ${non2xx:-0}" >>"$work/$name.results"
}

# median COLUMN NAME
median() {
	awk -v c="$1" '{print $c}' "$work/$2.results" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# row NAME LABEL [BASE]: a table row of medians, with the ratio of req/s
# to BASE's.
row() {
	local rps p50 p99 ratio="" non2xx
	rps=$(median 1 "$1")
	p50=$(median 2 "$1")
	p99=$(median 3 "$1")
	non2xx=$(median 4 "$1")
	if [ -n "${3:-}" ]; then
		ratio=$(awk -v a="$rps" -v b="$(median 1 "$3")" 'BEGIN {printf "%.3f", a / b}')
	fi
	printf "| %-34s | %9.0f | %7.0f µs | %7.0f µs | %6s | %s\n" "$2" "$rps" "$p50" "$p99" "$ratio" "$([ "$non2xx" != 0 ] && echo "($non2xx non-2xx: expected)" || true)"
}

header() {
	echo "| configuration                      |     req/s |      p50 |      p99 | ratio |"
	echo "|------------------------------------|-----------|----------|----------|-------|"
}

noauth=$PORT basic=$((PORT + 1)) tf=$((PORT + 2))
start noauth "$noauth" ""
start basic "$basic" "basic_auth {
		bench $hash
	}"
start tf "$tf" "two_factor {
		db $work/2fa.db
		user bench $hash
	}"
cookie=$("$work/signin" -base "http://127.0.0.1:$tf" -user bench -password "$password")
basic_header="Authorization: Basic $(printf 'bench:%s' "$password" | base64)"
for check in "http://127.0.0.1:$noauth/" "-H|$basic_header|http://127.0.0.1:$basic/" "-H|Cookie: $cookie|http://127.0.0.1:$tf/"; do
	IFS='|' read -r -a args <<<"$check"
	got=$(curl -s "${args[@]}")
	[ "$got" = "$body" ] || { echo "sanity check failed for ${args[*]}: $got" >&2; exit 1; }
done
idle_rss=$(rss "$pid_tf")

if [ "$REDIS" = 1 ]; then
	# A redis-server of the run's own: loopback, a password, no snapshots,
	# and the AOF that README.md asks for ("What the Redis server needs"),
	# with appendfsync REDIS_AOF: everysec by default, as bbolt's fsync of
	# every commit compares with "always".
	redis_port=$((PORT + 20))
	while (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; do redis_port=$((redis_port + 1)); done
	BENCH_REDIS_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	export BENCH_REDIS_PASSWORD
	redis-server --bind 127.0.0.1 --port "$redis_port" --requirepass "$BENCH_REDIS_PASSWORD" --save '' \
		$([ "$REDIS_AOF" = off ] && echo "--appendonly no" || echo "--appendonly yes --appendfsync $REDIS_AOF") \
		--dir "$work" --logfile "$work/redis.log" &
	pids+=($!)
	for i in $(seq 200); do
		if redis-cli -p "$redis_port" --no-auth-warning -a "$BENCH_REDIS_PASSWORD" ping 2>/dev/null | grep -q PONG; then break; fi
		sleep 0.05
	done
	# redis_store PREFIX: the store directive for the run's redis-server.
	redis_store() {
		echo "store redis {
			address 127.0.0.1:$redis_port
			password {env.BENCH_REDIS_PASSWORD}
			key_prefix $1
		}"
	}
	tfredis=$((PORT + 10))
	start tfredis "$tfredis" "two_factor {
		$(redis_store bench-gate:)
		user bench $hash
	}"
	cookie_redis=$("$work/signin" -base "http://127.0.0.1:$tfredis" -user bench -password "$password")
	got=$(curl -s -H "Cookie: $cookie_redis" "http://127.0.0.1:$tfredis/")
	[ "$got" = "$body" ] || { echo "sanity check failed for the Redis two_factor: $got" >&2; exit 1; }
fi

echo "Measuring: $ROUNDS rounds of $DURATION per configuration, wrk -t$THREADS -c$CONNS, alternating…" >&2
for round in $(seq "$ROUNDS"); do
	echo "  round $round" >&2
	load noauth "http://127.0.0.1:$noauth/"
	load basic "http://127.0.0.1:$basic/" -H "$basic_header"
	load tf "http://127.0.0.1:$tf/" -H "Cookie: $cookie"
	if [ "$REDIS" = 1 ]; then
		load tfredis "http://127.0.0.1:$tfredis/" -H "Cookie: $cookie_redis"
	fi
	load tf401 "http://127.0.0.1:$tf/" -H "Accept: application/json"
	load tfredirect "http://127.0.0.1:$tf/" -H "Accept: text/html"
done

echo
echo "Loopback, $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(go version | awk '{print $3}'), wrk -t$THREADS -c$CONNS -d$DURATION, median of $ROUNDS alternating rounds; ratio is req/s against no auth."
echo
header
row noauth "no auth (respond)" noauth
row basic "basic_auth (hash cache)" noauth
row tf "two_factor, signed in" noauth
row tf401 "two_factor, no session: 401" noauth
row tfredirect "two_factor, no session: redirect" noauth
if [ "$REDIS" = 1 ]; then
	row tfredis "two_factor on Redis, signed in" noauth
	echo
	echo "two_factor on Redis / on bbolt, signed in: $(awk -v a="$(median 1 tfredis)" -v b="$(median 1 tf)" 'BEGIN {printf "%.3f", a / b}')× the req/s (median of the rounds); round by round: $(paste -d' ' "$work/tfredis.results" "$work/tf.results" | awk '{printf "%s%.3f", sep, $1 / $5; sep = ", "}')."
	echo "Round by round, against no auth: bbolt $(paste -d' ' "$work/tf.results" "$work/noauth.results" | awk '{printf "%s%.3f", sep, $1 / $5; sep = ", "}'); Redis $(paste -d' ' "$work/tfredis.results" "$work/noauth.results" | awk '{printf "%s%.3f", sep, $1 / $5; sep = ", "}')."
fi
echo
echo "two_factor RSS: $idle_rss idle after sign-in; $(rss "$pid_tf") after the load, $(hwm "$pid_tf") at most."

if [ "$STORM" = 1 ]; then
	# The storm's clients all come from 127.0.0.1. Against the default
	# limits ("one address") that address locks within its first failures,
	# and is then turned away before it takes a hashing slot. Loopback
	# cannot give a storm many real source addresses, so a second
	# two_factor, whose per-IP limit cannot trigger, stands in for a storm
	# from many addresses: every attempt is hashed or waits for a slot.
	tfmany=$((PORT + 3))
	start tfmany "$tfmany" "two_factor {
		db $work/2fa-many.db
		user bench $hash
		max_ip_attempts 1000000000
	}"
	cookie_many=$("$work/signin" -base "http://127.0.0.1:$tfmany" -user bench -password "$password")
	got=$(curl -s -H "Cookie: $cookie_many" "http://127.0.0.1:$tfmany/")
	[ "$got" = "$body" ] || { echo "sanity check failed for the many-addresses two_factor: $got" >&2; exit 1; }

	# ticks PID: CPU time the process has used, in clock ticks.
	ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
	hz=$(getconf CLK_TCK)
	# storm_round CASE PORT COOKIE PID: a quiet wrk run of signed-in
	# requests, then one beside 64 storm clients; appends to CASEquiet,
	# CASEstorm, and to CASEcpu the CPU that the Caddy (PID) and the storm's
	# clients used from the storm's start to the end of wrk's run, in % of
	# one core.
	storm_round() {
		local name=$1 port=$2 cookie=$3 pid=$4 storm_pid t0 c0 s0
		load "${name}quiet" "http://127.0.0.1:$port/" -H "Cookie: $cookie"
		t0=$(date +%s%N) c0=$(ticks "$pid")
		"$work/storm" -base "http://127.0.0.1:$port" -c 64 -d "$(( ${DURATION%s} + 2 ))s" >>"$work/storm-$name.out" &
		storm_pid=$!
		s0=$(ticks "$storm_pid" 2>/dev/null || echo 0)
		sleep 1
		load "${name}storm" "http://127.0.0.1:$port/" -H "Cookie: $cookie"
		awk -v c="$(( $(ticks "$pid") - c0 ))" -v s="$(( $(ticks "$storm_pid" 2>/dev/null || echo "$s0") - s0 ))" -v t="$(( $(date +%s%N) - t0 ))" -v hz="$hz" \
			'BEGIN {printf "%.0f %.0f\n", 100 * c / hz / (t / 1e9), 100 * s / hz / (t / 1e9)}' >>"$work/${name}cpu.results"
		wait "$storm_pid"
	}
	# ratios CASE: the storm's p50 and p99 against the quiet rounds'.
	ratios() {
		echo "p50 $(awk -v a="$(median 2 "$1storm")" -v b="$(median 2 "$1quiet")" 'BEGIN {printf "%.2f", a / b}')×, p99 $(awk -v a="$(median 3 "$1storm")" -v b="$(median 3 "$1quiet")" 'BEGIN {printf "%.2f", a / b}')×"
	}

	echo "Sign-in storm: $ROUNDS rounds of signed-in load, quiet then beside 64 clients posting passwords, from one address and from many…" >&2
	for round in $(seq "$ROUNDS"); do
		echo "  round $round" >&2
		storm_round one "$tf" "$cookie" "$pid_tf"
		storm_round many "$tfmany" "$cookie_many" "$pid_tfmany"
	done
	echo
	echo "Sign-in storm: 64 concurrent clients posting wrong passwords for many users (bcrypt at caddy hash-password's default cost), alternating with quiet rounds. One address: the default limits, the storm from 127.0.0.1 (locked after its first failures). Many addresses: max_ip_attempts 1000000000, standing in for a storm from many addresses (loopback has no other real source addresses); ratio is req/s against the case's quiet rounds."
	echo
	header
	row onequiet "one address: quiet" onequiet
	row onestorm "one address: during storm" onequiet
	row manyquiet "many addresses: quiet" manyquiet
	row manystorm "many addresses: during storm" manyquiet
	echo
	echo "During the storm / quiet: one address $(ratios one); many addresses $(ratios many)."
	echo "CPU during the storm rounds (median, % of one core of $(nproc)): one address: Caddy $(median 1 onecpu)%, storm clients $(median 2 onecpu)%; many addresses: Caddy $(median 1 manycpu)%, storm clients $(median 2 manycpu)%."
	echo "Storm clients, per round, one address:"
	sed 's/^/    /' "$work/storm-one.out"
	echo "Storm clients, per round, many addresses:"
	sed 's/^/    /' "$work/storm-many.out"
fi

if [ "$FLOOD" = 1 ]; then
	# A flood of sign-ins for one account, locked by the flood's first
	# failures, against a two_factor of its own (the storm above may have
	# locked 127.0.0.1 on the others). Refused attempts must not write to
	# the store: the disk bytes the Caddy process writes (write_bytes of
	# /proc/PID/io) are counted over each flood and divided by the refused
	# requests. max_ip_attempts is lifted so every refusal reaches the
	# account check instead of the client lock, the costlier path.
	tfflood=$((PORT + 6)) # past SCALE's PORT+4 and PORT+5
	start tfflood "$tfflood" "two_factor {
		db $work/2fa-flood.db
		user bench $hash
		user victim $hash
		max_ip_attempts 1000000000
	}"
	cookie_flood=$("$work/signin" -base "http://127.0.0.1:$tfflood" -user bench -password "$password")
	# Lock victim: wrong passwords (each a full hash) until one is refused.
	for i in $(seq 60); do
		"$work/storm" -base "http://127.0.0.1:$tfflood" -user victim -c 1 -d 1s | grep -q '429: ' && break
	done
	written() { awk '/^write_bytes/ {print $2}' "/proc/$1/io"; }
	# flood_round: a quiet wrk run of signed-in requests, then one beside 16
	# clients posting for the locked account; appends "refused bytes" to
	# floodio.results.
	flood_round() {
		local w0 flood_pid refused
		load floodquiet "http://127.0.0.1:$tfflood/" -H "Cookie: $cookie_flood"
		sync
		w0=$(written "$pid_tfflood")
		"$work/storm" -base "http://127.0.0.1:$tfflood" -user victim -c 16 -d "$(( ${DURATION%s} + 2 ))s" >"$work/flood.out" &
		flood_pid=$!
		sleep 1
		load floodflood "http://127.0.0.1:$tfflood/" -H "Cookie: $cookie_flood"
		wait "$flood_pid"
		sync
		refused=$(grep -o '429: [0-9]*' "$work/flood.out" | awk '{print $2}')
		echo "${refused:-0} $(( $(written "$pid_tfflood") - w0 ))" >>"$work/floodio.results"
		cat "$work/flood.out" >>"$work/flood-all.out"
	}
	echo "Flood of refused sign-ins: $ROUNDS rounds, quiet then beside 16 clients posting for one locked account…" >&2
	for round in $(seq "$ROUNDS"); do
		echo "  round $round" >&2
		flood_round
	done
	echo
	echo "Flood of refused sign-ins: 16 clients posting wrong passwords for one locked account as fast as they are answered, alternating with quiet rounds of signed-in load; ratio is req/s against the quiet rounds. Disk writes: bytes the Caddy process wrote to disk during each flood, per refused request."
	echo
	header
	row floodquiet "flood: quiet" floodquiet
	row floodflood "flood: during the flood" floodquiet
	echo
	awk '{r += $1; b += $2} END {printf "Refused requests: %d in %d floods; disk bytes written: %d in all, %.2f per refused request.\n", r, NR, b, (r ? b / r : 0)}' "$work/floodio.results"
	echo "Flood clients, per round:"
	sed 's/^/    /' "$work/flood-all.out"
fi

if [ "$SCALE" = 1 ]; then
	echo "Scale: seeding 1,000 and 1,000,000 sessions…" >&2
	cat >"$work/rotate.lua" <<-'EOF'
		local tokens = {}
		for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
		local i = 0
		request = function()
			i = i + 1
			return wrk.format("GET", "/", {["Cookie"] = "two_factor=" .. tokens[i % #tokens + 1]})
		end
	EOF
	echo
	echo "Scale: one user signed in through the pages, and 1,000 seeded sessions of as many users taken in turn (wrk Lua script), against databases of 1,000 and 1,000,000 sessions (100 and 100,000 users)."
	echo
	echo "| sessions  | file B/session | start-up | RSS idle (private)  | RSS after load (private) | RSS max | one session: req/s, p50, p99 | 1,000 sessions: req/s, p50, p99 |"
	echo "|-----------|----------------|----------|---------------------|--------------------------|---------|------------------------------|---------------------------------|"
	port=$((PORT + 4))
	for n in 1000 1000000; do
		db="$work/scale-$n.db"
		"$work/seed" -db "$db" -users $((n / 10)) -sessions "$n" -tokens "$work/tokens-$n" -token-count 1000 2>/dev/null
		size=$(stat -c %s "$db")
		t0=$(date +%s%N)
		start "scale$n" "$port" "two_factor {
		db $db
		user bench $hash
	}"
		t1=$(date +%s%N)
		pid_var="pid_scale$n"
		pid=${!pid_var}
		one=$("$work/signin" -base "http://127.0.0.1:$port" -user bench -password "$password")
		idle=$(rss "$pid")
		for round in $(seq "$ROUNDS"); do
			load "one$n" "http://127.0.0.1:$port/" -H "Cookie: $one"
			TOKENS="$work/tokens-$n" load "many$n" "http://127.0.0.1:$port/" -s "$work/rotate.lua"
		done
		printf "| %9d | %14.0f | %5.0f ms | %19s | %24s | %7s | %6.0f, %4.0f µs, %5.0f µs | %6.0f, %4.0f µs, %5.0f µs |\n" "$n" \
			"$(awk -v s="$size" -v n="$n" 'BEGIN {print s / n}')" "$(((t1 - t0) / 1000000))" "$idle" "$(rss "$pid")" "$(hwm "$pid")" \
			"$(median 1 "one$n")" "$(median 2 "one$n")" "$(median 3 "one$n")" \
			"$(median 1 "many$n")" "$(median 2 "many$n")" "$(median 3 "many$n")"
		kill "$pid"
		wait "$pid" 2>/dev/null || true
		port=$((port + 1))
	done
	echo
	echo "1,000,000 vs 1,000 sessions, p50 latency: one session $(awk -v a="$(median 2 one1000000)" -v b="$(median 2 one1000)" 'BEGIN {printf "%.2f", a / b}')×, 1,000 sessions $(awk -v a="$(median 2 many1000000)" -v b="$(median 2 many1000)" 'BEGIN {printf "%.2f", a / b}')×."
	echo "Start-up is from launching the process to its first answer (Caddy's own start included). The database is mmapped: pages of it that requests touch count in RSS (the kernel maps pages around each one read), but they are the page cache's, shared and reclaimable; the private part is the process's own memory."
fi

if [ "$REDIS" = 1 ]; then
	# Sign-in latency, bbolt vs Redis: SIGNINS users signed in through the
	# pages on each (the login page, the password, the setup page, the
	# code), in alternating batches. The hashes are bcrypt at cost 4, the
	# lowest, so that the store's share shows: at the default cost the
	# hash alone takes about a second.
	hash4=$("$work/caddy" hash-password --algorithm bcrypt --bcrypt-cost 4 --plaintext "$password")
	users=$(for i in $(seq "$SIGNINS"); do printf '\n\t\tuser bench%d %s' "$i" "$hash4"; done)
	sibolt=$((PORT + 11)) siredis=$((PORT + 12)) siredis_b=$((PORT + 13)) admin_a=$((PORT + 14))
	start sibolt "$sibolt" "two_factor {
		db $work/2fa-signin.db$users
	}"
	# Two instances on one prefix: A, where users sign in and are revoked
	# (its admin endpoint on), and B, which must stop honouring them.
	start siredis "$siredis" "two_factor {
		$(redis_store bench-signin:)$users
	}" "127.0.0.1:$admin_a"
	start siredis_b "$siredis_b" "two_factor {
		$(redis_store bench-signin:)$users
	}"
	echo "Sign-in latency: $SIGNINS sign-ins on bbolt and on Redis, alternating batches…" >&2
	batch=$(( (SIGNINS + ROUNDS - 1) / ROUNDS ))
	for first in $(seq 1 "$batch" "$SIGNINS"); do
		n=$(( first + batch - 1 > SIGNINS ? SIGNINS - first + 1 : batch ))
		"$work/signin" -base "http://127.0.0.1:$sibolt" -user bench -password "$password" -n "$n" -first "$first" -durations "$work/signin-bolt.us" >/dev/null 2>&1
		"$work/signin" -base "http://127.0.0.1:$siredis" -user bench -password "$password" -n "$n" -first "$first" -durations "$work/signin-redis.us" >>"$work/signin-redis.cookies" 2>/dev/null
	done
	# pct FILE P: the Pth percentile of the numbers in FILE (nearest rank).
	pct() { sort -g "$1" | awk -v p="$2" '{v[NR] = $1} END {i = int(NR * p / 100); if (i < NR * p / 100) i++; if (i < 1) i = 1; print v[i]}'; }
	echo
	echo "Sign-in latency, $SIGNINS sign-ins per store through the pages (login page, password, setup page, code), bcrypt cost 4; redis-server with appendfsync $REDIS_AOF:"
	echo
	echo "| store  | p50 | p99 |"
	echo "|--------|-----|-----|"
	for st in bolt redis; do
		printf "| %-6s | %.1f ms | %.1f ms |\n" "$st" "$(pct "$work/signin-$st.us" 50 | awk '{print $1 / 1000}')" "$(pct "$work/signin-$st.us" 99 | awk '{print $1 / 1000}')"
	done
	echo
	echo "Redis / bbolt: p50 $(awk -v a="$(pct "$work/signin-redis.us" 50)" -v b="$(pct "$work/signin-bolt.us" 50)" 'BEGIN {printf "%.2f", a / b}')×, p99 $(awk -v a="$(pct "$work/signin-redis.us" 99)" -v b="$(pct "$work/signin-bolt.us" 99)" 'BEGIN {printf "%.2f", a / b}')×."

	echo "Revocation propagation: $SIGNINS revocations on A, polling B…" >&2
	echo
	echo "Revocation propagation, two Caddys on one redis-server: each session served by B from its memory, revoked through A's admin API, B polled with the cookie until it answers 401."
	"$work/propagate" -admin "http://127.0.0.1:$admin_a" -b "http://127.0.0.1:$siredis_b" <"$work/signin-redis.cookies"
fi
