# Sourced by the bench scripts: the nginx fixtures (upstream, identity) and peers of
# ../shared/bench, rendered and started in a scratch folder.
SHARED=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../shared/bench" && pwd)

# start_fixtures DIR: render both nginx configs into DIR and start them.
start_fixtures() {
  local n
  for n in fixtures peers; do
    sed "s#@DIR@#$1#g; s#@NAME@#$n#g" "$SHARED/nginx/$n.conf.tmpl" > "$1/$n.conf"
    nginx -c "$1/$n.conf" -p "$1" || { echo "nginx ($n) failed"; return 1; }
  done
}

# stop_fixtures DIR: stop what start_fixtures started.
stop_fixtures() {
  local n
  for n in fixtures peers; do kill "$(cat "$1/$n.pid" 2>/dev/null)" 2>/dev/null; done
}
