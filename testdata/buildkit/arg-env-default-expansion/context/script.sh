#!/usr/bin/env sh
printf "%s" "$my_arg $*" >/out
