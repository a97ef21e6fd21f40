#!/bin/sh
cat /app/message.txt
echo "hello, ${NAME}: running as uid $(id -u) in $(pwd) on $(uname -m)"
