#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, starts the real servers the
# tests talk to (all on 127.0.0.1), and runs the whole suite. This is the README's test command
# and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: dnsmasq (a real DNS server for DNS steps), curl (readiness checks).
missing=()
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# PyPI: httpbin behind gunicorn (HTTP peer), websockets (independent WebSocket peer), aiosmtpd
# (the real SMTP server the email tests start: tests/peers/smtp_sink.py), schemathesis (fuzzes
# the API against its OpenAPI document: tests/it/openapi.rs).
python3 -m pip install --quiet --disable-pip-version-check \
  'httpbin==0.10.*' 'gunicorn>=22' 'websockets>=13' 'aiosmtpd>=1.4,<2' 'schemathesis>=4.30,<5' 2>&1 | grep -v "Running pip as the 'root' user" || true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
# `stops`: shell commands run at exit, for daemons that are not our children (PostgreSQL).
stops=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for c in "${stops[@]}"; do eval "$c" || true; done
}
trap cleanup EXIT

HTTPBIN_PORT=$(free_port)
python3 -m gunicorn --bind "127.0.0.1:${HTTPBIN_PORT}" --workers 2 --log-level warning httpbin:app &
pids+=($!)
export HTTPBIN_URL="http://127.0.0.1:${HTTPBIN_PORT}"

WS_PORT_FILE=$(mktemp)
python3 tests/peers/ws_peer.py >"$WS_PORT_FILE" &
pids+=($!)

DNS_PORT=$(free_port)
dnsmasq --keep-in-foreground --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --no-poll --conf-file=/dev/null --pid-file= --log-facility=/dev/null \
  --local=/shop.test/ --host-record=shop.test,127.0.0.1,::1 --cname=www.shop.test,shop.test \
  --mx-host=shop.test,mail.shop.test,10 --txt-record=shop.test,"v=spf1 -all" &
pids+=($!)
export DNS_SERVER="127.0.0.1:${DNS_PORT}"

for _ in $(seq 1 100); do
  curl -fsS "${HTTPBIN_URL}/get" >/dev/null 2>&1 && [ -s "$WS_PORT_FILE" ] && break
  sleep 0.1
done
curl -fsS "${HTTPBIN_URL}/get" >/dev/null || { echo "httpbin did not start" >&2; exit 1; }
[ -s "$WS_PORT_FILE" ] || { echo "the WebSocket peer did not start" >&2; exit 1; }
export WS_PEER_URL="ws://127.0.0.1:$(head -n1 "$WS_PORT_FILE")"

# --- OTLP trace receiver (tests/it/telemetry.rs) -------------------------------------------
# PyPI: opentelemetry-proto, an independent decoder of the spans Waymark exports over OTLP/HTTP.
python3 -m pip install --quiet --disable-pip-version-check 'opentelemetry-proto>=1.20,<2' 2>&1 \
  | grep -v "Running pip as the 'root' user" || true
OTLP_PORT_FILE=$(mktemp)
python3 tests/peers/otlp_receiver.py "$(mktemp)" >"$OTLP_PORT_FILE" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$OTLP_PORT_FILE" ] && break; sleep 0.1; done
[ -s "$OTLP_PORT_FILE" ] || { echo "the OTLP receiver did not start" >&2; exit 1; }
export OTLP_PY_URL="http://127.0.0.1:$(head -n1 "$OTLP_PORT_FILE")"
# --- end of the OTLP trace receiver --------------------------------------------------------

# --- PostgreSQL for the store tests (tests/it/store.rs) ------------------------------------
# Debian `postgresql`, only if no initdb is installed. A private server on a free loopback port,
# trust auth, data and socket in a temp dir; it refuses to run as root, hence `runuser`.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
PG_DIR=$(mktemp -d)
chown postgres "$PG_DIR"
stops+=("pg pg_ctl -D '$PG_DIR/data' -m fast -w stop >/dev/null 2>&1; rm -rf '$PG_DIR'")
PG_PORT=$(free_port)
pg() { (cd "$PG_DIR" && runuser -u postgres -- "$PG_BIN/$1" "${@:2}"); }
pg initdb -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
pg pg_ctl -D "$PG_DIR/data" -l "$PG_DIR/log" -w -o "-p ${PG_PORT} -k ${PG_DIR} \
  -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
pg createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres waymark_test
export WAYMARK_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:${PG_PORT}/waymark_test"
# --- end of PostgreSQL ---------------------------------------------------------------------

# --- promtool for the /metrics test (tests/it/serve.rs) -----------------------------------
# Debian `prometheus` (about 19 MB), only if no promtool is installed: `promtool check metrics`
# parses the exposition with Prometheus's own parser. Without it the test checks less.
if ! command -v promtool >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# --- end of promtool -----------------------------------------------------------------------

# --- Chromium for the rendering tests (tests/it/digest.rs) --------------------------------
# Debian `chromium`, only if none is installed: headless screenshots of the digest's HTML.
if ! command -v chromium >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
# --- end of Chromium -----------------------------------------------------------------------

# --- playwright-core for the browser tests (tests/e2e, run by tests/it/dashboard.rs) -------
# From npm, pinned by tests/e2e/package-lock.json; it drives the Debian chromium above and
# downloads no browser of its own. It needs Node ≥ 20 (the machine image has it; Debian 12 only
# packages 18, installed here as a last resort).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
# --- end of playwright-core ----------------------------------------------------------------

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
# Broken intra-doc links and docs naming what does not exist fail here, not in review.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
cargo test "$@"
