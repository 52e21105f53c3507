#!/bin/sh
# cordon-result STATUS [MESSAGE] [NAME=NUMBER ...]
# Reports a structured result on cordon's result channel (not stdout).
#
# It builds no JSON: it writes a NUL-separated record that the supervisor decodes and
# validates (no argument can contain a NUL byte, so no message or value can end a field
# early or add one). A call it refuses is still reported, as a refused record: the
# supervisor turns it into crit with the reason, never into "no report" (which would let
# the exit code say ok).
set -u
fd=${CORDON_RESULT_FD:-4}

refuse() {
  echo "cordon-result: $1" >&2
  printf '\0cordon-result/1\0i%s\0e\0\n' "$1" >&"$fd" 2>/dev/null
  exit 64
}

# A JSON number, checked on the WHOLE value: the case pattern refuses anything but
# digits, signs, dots and exponents (a newline included), so the one-line grep that
# follows sees the entire value.
is_number() {
  case $1 in '' | *[!0-9eE.+-]*) return 1 ;; esac
  printf '%s\n' "$1" | grep -Eqx -- '-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?'
}

[ $# -ge 1 ] || refuse "usage: cordon-result ok|warn|crit|unknown [MESSAGE] [NAME=NUMBER ...]"
status=$1
shift
case $status in ok | warn | crit | unknown) ;; *) refuse "status must be ok, warn, crit or unknown, not '$status'" ;; esac

# Check every metric before anything is written: a record is all or nothing.
first=1
for pair in "$@"; do
  if [ $first = 1 ]; then first=0; continue; fi # the message
  name=${pair%%=*}
  value=${pair#*=}
  [ "$name" != "$pair" ] && [ -n "$name" ] || refuse "metric '$pair' is not NAME=NUMBER"
  is_number "$value" || refuse "metric $name: '$value' is not a number"
done

{
  printf '\0cordon-result/1\0s%s\0' "$status"
  if [ $# -ge 1 ]; then
    printf 'm%s\0' "$1"
    shift
  fi
  if [ $# -ge 1 ]; then printf 'p%s\0' "$@"; fi # printf repeats the format for each pair
  printf 'e\0\n'
} >&"$fd" || {
  echo "cordon-result: the result channel (fd $fd) is not writable" >&2
  exit 74
}
