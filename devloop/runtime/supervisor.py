"""A tiny POSIX shell supervisor, PID 1 in dev mode, so a process can restart without a new
container.

The supervisor starts the container's command as its child and then:
- on HUP: stops the child (TERM to it and its descendants, KILL after a grace period)
  and starts it again;
- on TERM or INT: forwards TERM the same way and exits with the child's code;
- when the child exits on its own: exits with the child's code, so the engine's restart
  policy (or the kubelet) sees the crash as it would without the supervisor.

Each start writes "<generation> <pid>" to STATE, which is how `restart_argv` knows the
new process is running before it returns.
"""

from __future__ import annotations

from collections.abc import Sequence

STATE = "/tmp/.devloop-supervisor"
NAME = "devloop-supervisor"  # $0 of the script: what `ps` shows for PID 1
GRACE_SECONDS = 10

# Job control is unavailable without a terminal, so the child shares our process group;
# descendants are found through /proc instead, so `sh -c 'server'` children stop too.
SCRIPT = r"""# devloop supervisor: HUP restarts the command, TERM stops it
state=__STATE__
gen=0 child= restart= stopping= said=
start() {
  "$@" &
  child=$!
  gen=$((gen + 1))
}
tree() {
  all=$1 todo=$1
  while [ -n "$todo" ]; do
    next=
    for f in /proc/[0-9]*/stat; do
      read -r line 2>/dev/null <"$f" || continue
      set -- ${line##*) }
      case " $todo " in *" $2 "*) f=${f%/stat}; next="$next ${f#/proc/}" ;; esac
    done
    all="$all$next" todo=$next
  done
  echo "$all"
}
alive() {
  read -r line 2>/dev/null <"/proc/$1/stat" || return 1
  set -- ${line##*) }
  [ "$1" != Z ]
}
# TERM, then wait for the child itself (no polling); a timer sends TERM once more after
# 0.2 s (a TERM that lands between fork and exec of a child just started is lost) and KILLs
# what is left after the grace period. `wait` returns early on a trapped signal, hence the loop.
stop_child() {
  kill -TERM $(tree "$child") 2>/dev/null
  (
    sleep 0.2 & s=$!
    wait $s
    kill -TERM $(tree "$child") 2>/dev/null
    sleep __GRACE__ & s=$!
    wait $s
    kill -KILL $(tree "$child") 2>/dev/null
  ) &
  timer=$!
  while alive "$child"; do wait "$child" 2>/dev/null; done
  # the child is gone: stop the timer (its pending sleep ends on its own)
  kill -KILL "$timer" 2>/dev/null
  wait "$timer" 2>/dev/null
}
trap 'restart=1' HUP
trap 'stopping=1; kill -TERM $(tree "$child") 2>/dev/null' TERM INT
start "$@"
while :; do
  # recorded here, not in start(): a restart asked for once the new child is recorded finds
  # this loop at (or about to enter) `wait`, which its HUP interrupts
  [ "$said" = "$gen" ] || { echo "$gen $child" >"$state" 2>/dev/null; said=$gen; }
  if [ -n "$restart" ] && [ -z "$stopping" ]; then restart=; stop_child; start "$@"; continue; fi
  wait "$child"
  code=$?
  if alive "$child"; then
    if [ -n "$restart" ] && [ -z "$stopping" ]; then restart=; stop_child; start "$@"; fi
    continue
  fi
  if [ -n "$restart" ] && [ -z "$stopping" ]; then restart=; start "$@"; continue; fi
  exit "$code"
done
""".replace("__STATE__", STATE).replace("__GRACE__", str(GRACE_SECONDS))

# Signal PID 1, then wait until it has recorded a new child. Without a state file
# (read-only /tmp) there is nothing to wait on: give it a moment and trust the signal.
RESTART = r"""# devloop: restart the supervised command
state=__STATE__
old=
read -r old 2>/dev/null <"$state"
kill -HUP 1 || exit 1
[ -n "$old" ] || { sleep 0.2; exit 0; }
i=0 cur=$old
while [ "$cur" = "$old" ]; do
  i=$((i + 1))
  [ "$i" -gt __TRIES__ ] && { echo "the supervisor did not restart the process" >&2; exit 1; }
  sleep 0.002
  read -r cur 2>/dev/null <"$state" || cur=
done
""".replace("__STATE__", STATE).replace("__TRIES__", str((GRACE_SECONDS + 20) * 500))


def wrap(argv: Sequence[str]) -> list[str]:
    """The command line that runs `argv` under the supervisor (needs /bin/sh in the image)."""
    if not argv:
        raise ValueError("the supervisor needs a command to run")
    return ["/bin/sh", "-c", SCRIPT, NAME, *argv]


def restart_argv() -> list[str]:
    """Exec this in the container: restarts the supervised process, returns once the new one
    runs."""
    return ["/bin/sh", "-c", RESTART]
