# devloop sync agent: applies batches of deletes + tar read from stdin, one ack line each.
# Protocol (see devloop/channel.py): the agent prints "ready 1" (or "unavailable <what>")
# then, per batch, reads a header line "<seq> <delete_bytes> <tar_bytes> [<op> <delete_lines>]"
# (op: "restart" or "-"), exactly that many bytes of newline-separated paths to delete and of
# tar, and answers "ok <seq>" or "err <seq> <message>". "$1" = once: apply one batch, then exit (exec-per-batch fallback).
# POSIX sh only: it runs in whatever image the user built (busybox ash, dash, bash).

missing=""
for tool in tar dd rm; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
# busybox without FEATURE_DD_IBS_OBS or an old dd lacks iflag=fullblock; without it
# dd may return a short read from the pipe and the stream loses its framing.
if [ -z "$missing" ] && ! echo x | dd bs=1 count=1 iflag=fullblock >/dev/null 2>&1; then
  missing=" dd(iflag=fullblock)"
fi
if [ -n "$missing" ]; then
  echo "unavailable${missing}"
  exit 3
fi

# Copy exactly $1 bytes of stdin to stdout, in 64 KiB blocks so a big batch does not
# make dd allocate one buffer the size of the batch.
take() {
  q=$(($1 / 65536))
  r=$(($1 % 65536))
  if [ "$q" -gt 0 ]; then dd bs=65536 count="$q" iflag=fullblock 2>/dev/null || return 1; fi
  if [ "$r" -gt 0 ]; then dd bs="$r" count=1 iflag=fullblock 2>/dev/null || return 1; fi
  return 0
}

# Print $1 on one line: the ack is line-framed.
oneline() {
  IFS='
'
  set -- $1
  IFS=' '
  printf '%s' "$*"
}

# A scratch file lets a small batch cost two processes (dd, tar) instead of a pipeline
# of five: dd consumes exactly the tar's bytes, so a failing tar cannot desync the stream.
# Without a writable temp dir, fall back to the pipeline.
scratch=""
for dir in /dev/shm "${TMPDIR:-/tmp}" /var/tmp "$HOME"; do
  if [ -n "$dir" ] && [ -d "$dir" ] && : 2>/dev/null >"$dir/.devloop-sync.$$"; then
    scratch="$dir/.devloop-sync.$$"
    break
  fi
done
errs="${scratch:+$scratch.err}"
trap '[ -n "$scratch" ] && rm -f "$scratch" "$errs"' EXIT

# Rewrite an existing file in place (its inode kept), as editors do: a watcher holding the
# file's inode (chokidar's fs.watch, behind Vite, webpack and nodemon) loses track of a file
# that tar unlinks and recreates. Tars without --overwrite (bsdtar) replace files, and so
# do batches too big for the scratch file (a branch switch, not an editor's save).
overwrite=""
case $(tar --overwrite -x -f /dev/null -C / 2>&1) in
  *nrecognized* | *nknown* | *nvalid* | *upported* | *sage:*) ;;
  *) overwrite="--overwrite" ;;
esac

# `then: restart` through this open channel instead of a new exec (~50 ms): HUP the
# supervisor (PID 1, devloop/runtime/supervisor.py) and return once it has recorded its new
# child. No state file: not supervised, and devloop restarts the container its own way.
state=/tmp/.devloop-supervisor
restart() {
  [ -e "$state" ] || { out="unsupervised"; return 1; }
  old= i=0
  # empty while the supervisor rewrites it
  while ! read -r old 2>/dev/null <"$state" || [ -z "$old" ]; do
    i=$((i + 1))
    [ "$i" -gt 500 ] && { out="unsupervised: $state stays empty"; return 1; }
    sleep 0.002
  done
  kill -HUP 1 2>/dev/null || { out="unsupervised: cannot signal PID 1"; return 1; }
  i=0 cur=$old
  while [ "$cur" = "$old" ]; do
    i=$((i + 1))
    [ "$i" -gt 15000 ] && { out="the supervisor did not restart the process"; return 1; }
    sleep 0.002
    read -r cur 2>/dev/null <"$state" || cur=
  done
  return 0
}

set -f  # paths from the delete list must never be glob-expanded
nl='
'
echo "ready 1"
while IFS=' ' read -r seq dn tn op dl; do
  case "$seq:$dn:$tn:${dl:-0}" in
    *[!0-9:]* | :* | *::* | *:) echo "err 0 bad header"; exit 2 ;;
  esac
  out=""
  if [ "$dn" -gt 0 ]; then
    if [ "${dl:-0}" -gt 0 ] && [ "$dl" -le 64 ]; then
      # a short list (an editor's save): read by the shell itself, two forks fewer than dd
      list="" k=0
      while [ "$k" -lt "$dl" ] && IFS= read -r path; do list="$list$path$nl"; k=$((k + 1)); done
    else
      list=$(take "$dn")
    fi
    IFS=$nl
    for path in $list; do
      IFS=' '
      case "$path" in
        # a directory the batch writes into: never through a symlink (tar would follow it)
        '?'*) path=${path#?}; if [ -L "$path" ]; then rm -f -- "$path" || out="$out""rm failed on $path$nl"; fi ;;
        # a file the batch writes: in place when a regular file is there, never through a
        # symlink, and whatever else is in the way (a directory) goes first
        '='*) path=${path#?}
          if [ -L "$path" ] || { [ -e "$path" ] && [ ! -f "$path" ]; }; then
            msg=$(rm -rf -- "$path" 2>&1) || out="$out${msg:-rm failed on $path}$nl"
          fi ;;
        *) msg=$(rm -rf -- "$path" 2>&1) || out="$out${msg:-rm failed on $path}$nl" ;;
      esac
    done
    IFS=' '
  fi
  if [ "$tn" -gt 0 ] && [ -n "$scratch" ] && [ "$tn" -le 1048576 ]; then
    if dd bs="$tn" count=1 iflag=fullblock of="$scratch" 2>/dev/null; then
      # in place fails on a running binary (ETXTBSY): then replace the files as tar does
      tar -x -m -o $overwrite -f "$scratch" -C / 2>"$errs" \
        || { [ -n "$overwrite" ] && tar -x -m -o -f "$scratch" -C / 2>"$errs"; } \
        || out="$out$(cat "$errs")${nl}tar failed$nl"
    else
      # dd read the whole batch before its write failed, so the framing holds; a full
      # scratch space (a small /dev/shm): stream from now on, devloop sends the batch again
      out="${out}could not write the batch to $scratch (full?): streaming the next ones$nl"
      rm -f "$scratch" "$errs"
      scratch="" errs=""
    fi
  elif [ "$tn" -gt 0 ]; then
    # the reader drains what tar leaves unread, so a failed extraction keeps the framing
    msg=$(take "$tn" | { tar -x -m -o -f - -C / 2>&1; rc=$?; dd of=/dev/null bs=65536 2>/dev/null; exit $rc; }) \
      || out="$out${msg:-tar failed}$nl"
  fi
  if [ -z "$out" ] && [ "$op" = restart ]; then
    restart
  fi
  if [ -z "$out" ]; then
    echo "ok $seq"
  else
    echo "err $seq $(oneline "$out")"
  fi
  [ "$1" = once ] && exit 0
done
exit 0
