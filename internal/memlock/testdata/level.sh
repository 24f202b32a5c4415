#!/bin/sh
# level.sh N MAX: print "L<N> <VmLck in kB>" for this shell, then run the next
# level as a child process (a new sh image, one generation further).
n=$1
max=$2
while read -r k v _; do
	if [ "$k" = "VmLck:" ]; then echo "L$n $v"; fi
done < /proc/$$/status
if [ "$n" -lt "$max" ]; then
	sh "$0" $((n + 1)) "$max"
fi
