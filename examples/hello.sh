#!/bin/sh
# A tiny script run under cordon's default policy: it shows who and where it is.
echo "hello from $(id -un) (uid $(id -u)) on $(hostname)"
echo "cwd: $(pwd)"
echo "network interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
