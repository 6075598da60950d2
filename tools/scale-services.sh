#!/usr/bin/env bash
# Starts a throwaway Redis and PostgreSQL on loopback for the scale integration suite and prints the
# environment to use them: eval "$(bash tools/scale-services.sh start [dir])"; stop with `... stop dir`.
# Debian's redis-server and postgresql 15 binaries; no system service is needed.
set -euo pipefail
cmd=${1:-start}
dir=${2:-$(mktemp -d /tmp/studio-scale-XXXXXX)}
# The first free port from a default (another copy of the suite may hold one).
free_port() { local p=$1; while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done; echo "$p"; }
redis_port=${STUDIO_TEST_REDIS_PORT:-$(free_port 6391)}
pg_port=${STUDIO_TEST_PG_PORT:-$(free_port 5441)}
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ "$cmd" = stop ]; then
  [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  [ -d "$dir/pg" ] && as_pg "$pg_bin/pg_ctl" -D "$dir/pg" -m fast stop >/dev/null 2>&1 || true
  exit 0
fi

mkdir -p "$dir"
if command -v redis-server >/dev/null; then
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" >&2
  for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "export STUDIO_TEST_REDIS_URL=redis://127.0.0.1:$redis_port"
else
  echo "echo 'scale suite: redis-server is not installed'" 
fi

if [ -n "$pg_bin" ]; then
  [ "$(id -u)" = 0 ] && chown postgres "$dir" && chmod 755 "$dir"
  as_pg "$pg_bin/initdb" -D "$dir/pg" -U studio --auth=trust -E UTF8 >/dev/null
  as_pg "$pg_bin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w \
    -o "-p $pg_port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
  as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U studio studio
  echo "export STUDIO_TEST_DATABASE_URL=postgresql://studio@127.0.0.1:$pg_port/studio"
else
  echo "echo 'scale suite: PostgreSQL is not installed'"
fi
echo "export STUDIO_TEST_SERVICES_DIR=$dir"
