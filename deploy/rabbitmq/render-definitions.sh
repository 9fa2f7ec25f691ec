#!/bin/sh
# Entrypoint wrapper of the RabbitMQ container (deploy/compose.yaml).
#
# deploy/rabbitmq/definitions.json is committed WITHOUT a password: the hub's admin user has an
# empty password_hash, which RabbitMQ treats as "no password login possible". Here, before the
# broker starts, we write a copy whose password_hash is the salted SHA-256 hash (RabbitMQ's
# rabbit_password_hashing_sha256: base64(salt[4] ++ sha256(salt[4] ++ password))) of the
# secret in $HUB_PASSWORD_FILE, to /run/inbeeld/definitions.json (rabbitmq.conf points there),
# readable by the rabbitmq user only. The plaintext is never written anywhere. Then we hand
# over to the image's own entrypoint.
#
# Definitions are imported on every boot, so rotating the password is: change the secret,
# restart the broker, restart the hub services.
#
# Without arguments it only renders (for importing elsewhere, e.g.
#   HUB_PASSWORD_FILE=./hub-password DEFINITIONS_TEMPLATE=./definitions.json \
#   DEFINITIONS_OUT=/secure/dir/definitions.json sh render-definitions.sh
# then `rabbitmqctl import_definitions /secure/dir/definitions.json` and delete the copy).
set -eu

SRC=${DEFINITIONS_TEMPLATE:-/etc/rabbitmq/inbeeld/definitions.json}
HUB_PASSWORD_FILE=${HUB_PASSWORD_FILE:-/run/secrets/rabbitmq_hub_password}
OUT=${DEFINITIONS_OUT:-/run/inbeeld/definitions.json}
OUT_DIR=$(dirname "$OUT")

if [ ! -s "$HUB_PASSWORD_FILE" ]; then
  echo "render-definitions: $HUB_PASSWORD_FILE is missing or empty; set RABBITMQ_HUB_PASSWORD (see deploy/README.md)" >&2
  exit 1
fi

umask 077
mkdir -p "$OUT_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The secret file may end in a newline; the password is its first line.
head -n 1 "$HUB_PASSWORD_FILE" | tr -d '\r\n' > "$work/password"
openssl rand 4 > "$work/salt"
cat "$work/salt" "$work/password" | openssl dgst -sha256 -binary > "$work/digest"
hash=$(cat "$work/salt" "$work/digest" | openssl base64 -A)

# base64 never contains '|', so it is a safe sed delimiter.
sed "s|\"password_hash\": \"\"|\"password_hash\": \"$hash\"|" "$SRC" > "$OUT.tmp"
if ! grep -q "\"password_hash\": \"$hash\"" "$OUT.tmp"; then
  echo "render-definitions: no empty password_hash placeholder found in $SRC" >&2
  exit 1
fi
mv "$OUT.tmp" "$OUT"
rm -rf "$work"  # now: `exec` below would skip the EXIT trap

if [ "$#" -eq 0 ]; then
  exit 0
fi
# The broker runs as the rabbitmq user (the image's entrypoint drops root): let it read the file.
if [ "$(id -u)" = 0 ]; then
  chown rabbitmq:rabbitmq "$OUT_DIR" "$OUT"
fi
exec docker-entrypoint.sh "$@"
