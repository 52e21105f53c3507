#!/bin/sh
# Disk usage of the filesystem holding PATH, as the sandbox sees it (/usr is the
# host's system disk, bound read-only). Args: [PATH] [WARN_PERCENT] [CRIT_PERCENT].
# No awk: it is an /etc/alternatives link, absent from the sandbox's stub /etc.
set -eu
path=${1:-/usr}
warn=${2:-80}
crit=${3:-90}
line=$(df -P -k "$path" | tail -n 1)
echo "$line"
# Filesystem 1024-blocks Used Available Capacity Mounted-on
set -- $line
avail_kb=$4
used=${5%\%}
if [ "$used" -ge "$crit" ]; then status=crit
elif [ "$used" -ge "$warn" ]; then status=warn
else status=ok
fi
cordon-result "$status" "$path is $used% full ($avail_kb KiB free)" used_percent="$used" avail_kb="$avail_kb"
