#!/usr/bin/env bash
# Every command in docs/*.md, run against the demo world.
#
# For each docs/*.md (in name order) a fresh world is started (scripts/lib/demo-env.sh:
# sim-upstream, sim-cluster on the homelab fixture, a GitOps repository Flux reconciles, an
# upkeep.yaml), and every command of the file's ```console blocks runs in order in one bash
# shell, from $WORK, with KUBECONFIG, UPKEEP_CONFIG, GITOPS, ORIGIN, WORK, STATE_DIR,
# AGE_IDENTITY and AGE_RECIPIENT set. A command is a line starting with "$ " (a line ending
# in "\" continues it); the lines after it are its sample output and are not compared. A
# command must exit 0 unless its line ends with "# exit N".
#
# Comments invisible in the rendered page help the test:
#   <!-- docs-test: write PATH -->   before a fenced block: the block is written to PATH
#                                    (variables expanded) before the next command runs
#   <!-- docs-test: append PATH -->  the same, added to the end of PATH
#   <!-- docs-test: run COMMAND -->  a setup command (fault injection, waiting), not shown
#   <!-- docs-test: sim CONTROLLER KEY VALUE -->  a setting for a simulated controller of
#                                    this file's world, e.g. "upgrades failNodes [k3s-s3]"
#
# Prints "docs/x.md: N commands ok" per file and the totals; on the first failure names the
# file, line and command, shows its output, and exits 1.
# Needs the binaries built (cargo build --bins), kubectl, git, python3, jq and sqlite3.
# The files run side by side (DOCS_JOBS, default 3); DOCS_FILES limits the run to some files;
# DOCS_LOG_DIR keeps every file's full log.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${CARGO_TARGET_DIR:-target}/debug
for b in upkeep sim-cluster sim-upstream detect-k3s detect-flux detect-longhorn detect-charts \
  merge-report snapshot restore validate-flux validate-apps validate-storage validate-net apply-update; do
  [ -x "$bin/$b" ] || { echo "docs-examples: $bin/$b is missing; run cargo build --bins first" >&2; exit 1; }
done
for t in kubectl git python3 jq sqlite3; do
  command -v "$t" >/dev/null || { echo "docs-examples: $t is needed (the docs' commands use it)" >&2; exit 1; }
done
shopt -s nullglob
# DOCS_FILES="docs/a.md docs/b.md" runs only those.
if [ -n "${DOCS_FILES:-}" ]; then read -r -a files <<<"$DOCS_FILES"; else files=(docs/*.md); fi
[ ${#files[@]} -gt 0 ] || { echo "docs-examples: no docs/*.md" >&2; exit 1; }

# shellcheck source=scripts/lib/demo-env.sh
source scripts/lib/demo-env.sh
demo_env_init
started=$SECONDS

# Turns one markdown file into a bash script that runs its commands.
extract() {
  python3 - "$1" <<'PY'
import re, shlex, sys

path = sys.argv[1]
lines = open(path, encoding="utf-8").read().split("\n")
out = []
sims = []
n = 0
pending_write = None
i = 0

def emit(kind, lineno, cmd, expect):
    out.append(f"_docs_cmd {kind} {lineno} {expect} {shlex.quote(cmd)}")

while i < len(lines):
    line = lines[i]
    m = re.match(r"^\s*<!--\s*docs-test:\s*(write|append|run|sim)\s+(.*?)\s*-->\s*$", line)
    if m:
        if m.group(1) in ("write", "append"):
            pending_write = (m.group(1), m.group(2))
        elif m.group(1) == "sim":
            sims.append(m.group(2))
        else:
            emit("setup", i + 1, m.group(2), 0)
        i += 1
        continue
    fence = re.match(r"^(\s*)(```+|~~~+)\s*([A-Za-z0-9_+-]*)", line)
    if not fence:
        i += 1
        continue
    marker, lang = fence.group(2), fence.group(3)
    start = i
    body = []
    i += 1
    while i < len(lines) and not lines[i].lstrip().startswith(marker):
        body.append(lines[i])
        i += 1
    if i >= len(lines):
        sys.exit(f"{path}:{start + 1}: unclosed code block")
    i += 1
    if pending_write is not None:
        text = "\n".join(body) + "\n"
        out.append(f"_docs_write {pending_write[0]} {start + 1} {shlex.quote(pending_write[1])} {shlex.quote(text)}")
        pending_write = None
        continue
    if lang != "console":
        continue
    j = 0
    while j < len(body):
        l = body[j]
        if not l.startswith("$ "):
            j += 1
            continue
        lineno = start + 2 + j
        cmd = [l[2:]]
        while cmd[-1].endswith("\\") and j + 1 < len(body):
            j += 1
            cmd.append(body[j])
        j += 1
        text = "\n".join(cmd)
        expect = 0
        em = re.search(r"#\s*exit\s+(\d+)\s*$", cmd[-1])
        if em:
            expect = int(em.group(1))
        emit("doc", lineno, text, expect)
        n += 1
if pending_write is not None:
    sys.exit(f"{path}: docs-test: {pending_write[0]} {pending_write[1]} is not followed by a code block")
print("\n".join(f"#SIM {x}" for x in sims))
print("\n".join(out))
PY
}

# Runs one file's commands in its own world; leaves $DEMO_ROOT/NAME.counts ("ok setup")
# on success, NAME.fail (the message) on failure.
run_file() {
  local f=$1 name script log counts
  name=$(basename "$f" .md)
  log="$DEMO_ROOT/$name.log"
  counts="$DEMO_ROOT/$name.counts"
  : >"$log"
  script=$(extract "$f") || { echo "docs-examples: $f: cannot read its code blocks" >"$DEMO_ROOT/$name.fail"; return 1; }
  if ! grep -q '^_docs_' <<<"$script"; then
    echo "0 0" >"$counts"
    return 0
  fi
  trap demo_env_stop EXIT
  DEMO_SIM_EXTRA=$(sed -n 's/^#SIM //p' <<<"$script") demo_env_start "$name" >/dev/null 2>"$DEMO_ROOT/$name.world" ||
    { { echo "docs-examples: $f: the demo world did not start:"; cat "$DEMO_ROOT/$name.world"; } >"$DEMO_ROOT/$name.fail"; return 1; }
  # One shell per file: what a command exports or cd's into stays for the next one.
  (
    # An operator's shell: no errexit, nounset or pipefail for the documented commands.
    set +euo pipefail
    cd "$WORK" || exit 1
    ok=0 setup=0
    _docs_fail() {
      {
        echo "docs-examples: FAILED $f:$2: $1 exited $3, expected $4:"
        echo "  \$ $5"
        echo "--- its output (last 40 lines):"
        tail -n 40 "$log.last"
      } >"$DEMO_ROOT/$name.fail"
      exit 1
    }
    _docs_cmd() {
      local kind=$1 line=$2 expect=$3 cmd=$4 rc
      { echo; echo "### $f:$line ($kind)"; echo "\$ $cmd"; } >>"$log"
      eval "$cmd" </dev/null >"$log.last" 2>&1
      rc=$?
      cat "$log.last" >>"$log"
      [ "$rc" -eq "$expect" ] || _docs_fail "$([ "$kind" = doc ] && echo command || echo setup)" "$line" "$rc" "$expect" "$cmd"
      if [ "$kind" = doc ]; then ok=$((ok + 1)); else setup=$((setup + 1)); fi
    }
    _docs_write() {
      local how=$1 line=$2 target text=$4
      target=$(eval "echo $3")
      mkdir -p "$(dirname "$target")"
      [ "$how" = append ] || : >"$target"
      printf '%s' "$text" | python3 -c 'import os,sys; sys.stdout.write(os.path.expandvars(sys.stdin.read()))' >>"$target"
      { echo; echo "### $f:$line ${how} $target"; cat "$target"; } >>"$log"
    }
    eval "$script"
    echo "$ok $setup" >"$counts"
  )
}

# The files run side by side (DOCS_JOBS at a time, default 3), each in its own world;
# the results are printed in file order.
jobs_max=${DOCS_JOBS:-3}
job_pids=()
trap 'for p in "${job_pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait; demo_env_cleanup' EXIT
for f in "${files[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  run_file "$f" &
  job_pids+=($!)
done
wait || true

total_files=0 total_cmds=0 total_setup=0
for f in "${files[@]}"; do
  name=$(basename "$f" .md)
  # DOCS_LOG_DIR=DIR keeps each file's full log (every command and its output) there.
  if [ -n "${DOCS_LOG_DIR:-}" ]; then mkdir -p "$DOCS_LOG_DIR" && cp "$DEMO_ROOT/$name.log" "$DOCS_LOG_DIR/"; fi
  if [ -s "$DEMO_ROOT/$name.fail" ] || [ ! -s "$DEMO_ROOT/$name.counts" ]; then
    if [ -s "$DEMO_ROOT/$name.fail" ]; then cat "$DEMO_ROOT/$name.fail" >&2; else echo "docs-examples: $f: did not finish" >&2; fi
    exit 1
  fi
  read -r ok setup <"$DEMO_ROOT/$name.counts"
  if [ "$setup" -gt 0 ]; then
    echo "$f: $ok commands ok ($setup setup)"
  else
    echo "$f: $ok commands ok"
  fi
  total_files=$((total_files + 1)) total_cmds=$((total_cmds + ok)) total_setup=$((total_setup + setup))
done
echo "docs-examples: $total_files files, $total_cmds commands ok ($total_setup setup), $((SECONDS - started)) s"
