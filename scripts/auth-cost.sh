#!/usr/bin/env bash
# The cost of authentication and TLS per ingest request: runs `vigil serve` on loopback five
# ways (plain; a bearer token; a basic-auth user; TLS with a token; TLS with the user) and
# loads each with examples/ingest_load.rs, one event per request (Kong's http-log default)
# and 100 per request. Prints a Markdown table (BENCHMARKS.md). Needs openssl.
#
#   scripts/auth-cost.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
seconds=${1:-15}
connections=${2:-8}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
cargo build --release --quiet --bin vigil --example ingest_load
vigil=$top/target/release/vigil
load=$top/target/release/examples/ingest_load
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# A CA and a certificate for localhost.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=load-ca \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$work/vigil.key" -out "$work/vigil.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/san.ext"
openssl x509 -req -in "$work/vigil.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -days 2 -extfile "$work/san.ext" -out "$work/vigil.crt" 2>/dev/null

# bcrypt (cost 10) of "load-pass".
hash='$2b$10$dTHTLC1tREtfOhjsJQ.v3.t6wJSepFTEoGlmuz.2HI6VtavGbzatC'
printf 'basic_auth_users:\n  load: %s\n' "$hash" > "$work/users.yml"
printf 'tls_server_config:\n  cert_file: vigil.crt\n  key_file: vigil.key\nbasic_auth_users:\n  load: %s\n' \
    "$hash" > "$work/tls.yml"

run() { # name web-config scheme client-args...
    local name=$1 web=$2 scheme=$3
    shift 3
    local dir=$work/$name
    mkdir -p "$dir"
    {
        printf 'collector:\n  window: 10s\nserver:\n'
        if [ -n "$web" ]; then
            printf '  web_config_file: %s\n' "$work/$web"
            printf '  tokens:\n    - { name: kong, token: kong-token, scopes: [ingest] }\n'
        fi
    } > "$dir/vigil.yaml"
    "$vigil" serve --config "$dir/vigil.yaml" --data-dir "$dir/data" --listen 127.0.0.1:0 2> "$dir/log" &
    local pid=$! port=""
    for _ in $(seq 100); do
        port=$(grep -o 'vigil is serving.*127.0.0.1:[0-9]*' "$dir/log" | grep -o '[0-9]*$' || true)
        [ -n "$port" ] && break
        sleep 0.1
    done
    local url=$scheme://localhost:$port
    for batch in 1 100; do
        local out
        out=$("$load" --url "$url" --ca-file "$work/ca.pem" --batch "$batch" \
            --connections "$connections" --seconds "$seconds" "$@")
        printf '| %s | %s | %s |\n' "$name" "$batch" "$out"
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

printf '| setup | events per request | result |\n|---|---:|---|\n'
run plain "" http
run token users.yml http --token kong-token
run basic users.yml http --basic load:load-pass
run tls-token tls.yml https --token kong-token
run tls-basic tls.yml https --basic load:load-pass
