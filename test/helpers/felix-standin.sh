#!/bin/bash
# A stand-in for Calico Felix's main route table (felix/routetable/route_table.go with the ownership policy of
# felix/routetable/ownershippol/main_route_table_policy.go): every sweep it writes its workload device routes with
# protocol 80 at the normal route priority (metric 1024: felix/dataplane/linux/endpoint_mgr.go routePriority) and
# deletes every other proto-80 route of the main table, as Felix does with routes it did not write.
# Usage: felix-standin.sh SWEEPS INTERVAL_S [ADDRESS DEV]...   (run inside a host's network namespace)
# Prints "sweep N" after each sweep, "restore DST" when a route it wrote before was missing or changed, and
# "delete ROUTE" for every foreign proto-80 route it removed. Bounded: exits after SWEEPS sweeps.
sweeps=$1; interval=$2; shift 2
declare -A want
while [ $# -ge 2 ]; do want[$1]=$2; shift 2; done
for ((i = 1; i <= sweeps; i++)); do
  cur=$(ip -o -4 route show table main proto 80)
  for dst in "${!want[@]}"; do
    if ! grep -q "^$dst dev ${want[$dst]} " <<<"$cur"; then
      [ "$i" -gt 1 ] && echo "restore $dst"
      ip route replace "$dst/32" dev "${want[$dst]}" scope link proto 80 metric 1024 || echo "error $dst"
    fi
  done
  while read -r first second rest; do
    [ -z "$first" ] && continue
    dst=$first; typ=unicast
    case $first in blackhole|unreachable|prohibit) dst=$second; typ=$first ;; esac
    if [ -z "${want[${dst%/32}]}" ]; then
      echo "delete $first $second $rest"
      ip route del "$typ" "$dst" table main proto 80 || echo "error deleting $dst"
    fi
  done <<<"$cur"
  echo "sweep $i"
  sleep "$interval"
done
