#!/bin/sh
# cordon-result STATUS [MESSAGE] [NAME=NUMBER ...]
# Reports a structured result on cordon's result channel (not stdout).
set -eu
usage() { echo "usage: cordon-result ok|warn|crit|unknown [MESSAGE] [NAME=NUMBER ...]" >&2; exit 64; }
[ $# -ge 1 ] || usage
status=$1
shift
case $status in ok | warn | crit | unknown) ;; *) usage ;; esac

# JSON string body (sed only: awk is an /etc/alternatives link, absent in the sandbox): escape backslash and quote, keep tabs and newlines, drop other control bytes.
json_string() {
  printf '%s' "$1" | tr -d '\000-\010\013\014\016-\037' |
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g' -e 's/\r/\\r/g' |
    sed -e ':a' -e 'N' -e '$!ba' -e 's/\n/\\n/g'
}

json="{\"status\":\"$status\""
if [ $# -ge 1 ]; then
  json="$json,\"message\":\"$(json_string "$1")\""
  shift
fi
if [ $# -ge 1 ]; then
  metrics=""
  for pair in "$@"; do
    name=${pair%%=*}
    value=${pair#*=}
    [ "$name" != "$pair" ] && [ -n "$name" ] || { echo "cordon-result: metric '$pair' is not NAME=NUMBER" >&2; exit 64; }
    printf '%s\n' "$value" | grep -Eq '^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$' ||
      { echo "cordon-result: metric $name: '$value' is not a number" >&2; exit 64; }
    metrics="$metrics${metrics:+,}\"$(json_string "$name")\":$value"
  done
  json="$json,\"metrics\":{$metrics}"
fi
fd=${CORDON_RESULT_FD:-4}
printf '%s}\n' "$json" >&"$fd"
