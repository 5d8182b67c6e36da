#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, starts the real servers the
# tests talk to, and runs the whole suite. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python test servers: httpbin (behind gunicorn) for HTTP behaviour we do not write ourselves.
python3 -m pip install --quiet --disable-pip-version-check 'httpbin==0.10.*' 'gunicorn>=22' 2>&1 \
  | grep -v "Running pip as the 'root' user" || true
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

HTTPBIN_PORT=$(free_port)
python3 -m gunicorn --bind "127.0.0.1:${HTTPBIN_PORT}" --workers 2 --log-level warning httpbin:app &
HTTPBIN_PID=$!
trap 'kill $HTTPBIN_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:${HTTPBIN_PORT}/get" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:${HTTPBIN_PORT}/get" >/dev/null || { echo "httpbin did not start" >&2; exit 1; }
export HTTPBIN_URL="http://127.0.0.1:${HTTPBIN_PORT}"

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test "$@"
