#!/usr/bin/env bash
# Man pages and shell completions of every upkeep tool, generated from the built binaries
# (`TOOL --generate KIND`), laid out under PREFIX as packagers and the container image expect:
#
#   scripts/dist.sh BIN_DIR PREFIX      e.g. scripts/dist.sh target/release /usr/local
#
#   PREFIX/share/man/man1/TOOL.1
#   PREFIX/share/bash-completion/completions/TOOL
#   PREFIX/share/zsh/site-functions/_TOOL
#   PREFIX/share/fish/vendor_completions.d/TOOL.fish
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: scripts/dist.sh BIN_DIR PREFIX" >&2; exit 2; }
bin=$1 prefix=$2
tools=(upkeep detect-k3s detect-flux detect-longhorn detect-charts merge-report snapshot restore
  validate-flux validate-apps validate-storage validate-net apply-update)
for t in "${tools[@]}"; do
  [ -x "$bin/$t" ] || { echo "dist: $bin/$t is missing; build the tools first (cargo build --release --bins)" >&2; exit 2; }
done
mkdir -p "$prefix/share/man/man1" "$prefix/share/bash-completion/completions" \
  "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d"
# Each file is written beside its place and moved in, so a failure leaves no half file.
put() {
  local dest=$1; shift
  "$@" >"$dest.tmp" || { rm -f "$dest.tmp"; echo "dist: $* failed" >&2; exit 3; }
  mv "$dest.tmp" "$dest"
}
for t in "${tools[@]}"; do
  put "$prefix/share/man/man1/$t.1" "$bin/$t" --generate man
  put "$prefix/share/bash-completion/completions/$t" "$bin/$t" --generate complete-bash
  put "$prefix/share/zsh/site-functions/_$t" "$bin/$t" --generate complete-zsh
  put "$prefix/share/fish/vendor_completions.d/$t.fish" "$bin/$t" --generate complete-fish
done
echo "dist: ${#tools[@]} tools: man pages and bash, zsh and fish completions under $prefix/share" >&2
