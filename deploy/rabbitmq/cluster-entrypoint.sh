#!/bin/sh
# Entrypoint wrapper of each node of the three-node cluster (deploy/compose.cluster.yaml).
#
# Nodes of one cluster (and the CLI tools inside their containers) authenticate each other with
# a shared secret, the Erlang cookie. Compose hands it in as the secret `erlang_cookie`; here it
# is written to the rabbitmq user's cookie file, readable by that user only (RabbitMQ refuses a
# cookie file others can read), before handing over to render-definitions.sh, which puts the
# hub's hashed password into the definitions and starts the broker.
#
# The variables only exist so the script can be tried outside the image.
set -eu

COOKIE_FILE=${ERLANG_COOKIE_FILE:-/run/secrets/erlang_cookie}
TARGET=${ERLANG_COOKIE_TARGET:-/var/lib/rabbitmq/.erlang.cookie}
NEXT=${NEXT_ENTRYPOINT:-/usr/local/bin/render-definitions.sh}

if [ ! -s "$COOKIE_FILE" ]; then
  echo "cluster-entrypoint: $COOKIE_FILE is missing or empty; set RABBITMQ_ERLANG_COOKIE (see deploy/README.md)" >&2
  exit 1
fi

umask 077
mkdir -p "$(dirname "$TARGET")"
# The secret file may end in a newline; the cookie is its first line.
head -n 1 "$COOKIE_FILE" | tr -d '\r\n' > "$TARGET.tmp"
if [ ! -s "$TARGET.tmp" ]; then
  rm -f "$TARGET.tmp"
  echo "cluster-entrypoint: the first line of $COOKIE_FILE is empty" >&2
  exit 1
fi
chmod 400 "$TARGET.tmp"
mv -f "$TARGET.tmp" "$TARGET"
if [ "$(id -u)" = 0 ]; then
  chown rabbitmq:rabbitmq "$TARGET"
fi
exec sh "$NEXT" "$@"
