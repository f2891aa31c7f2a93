#!/usr/bin/env bash
# Builds mig and installs it under PREFIX (default: /usr/local as root, else ~/.local):
#   PREFIX/bin/mig                        the command
#   PREFIX/lib/mig/libmig.so              the library (mig finds it there, beside ../bin)
#   PREFIX/share/man/man1/mig*.1          man pages
#   PREFIX/share/bash-completion/completions/mig, zsh/site-functions/_mig,
#   fish/vendor_completions.d/mig.fish    shell completions
# Usage: scripts/install.sh [PREFIX]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then
  prefix=$1
elif [ "$(id -u)" = 0 ]; then
  prefix=/usr/local
else
  prefix=$HOME/.local
fi
cargo build --release --workspace
install -Dm755 target/release/mig "$prefix/bin/mig"
install -Dm755 target/release/libmig.so "$prefix/lib/mig/libmig.so"
mig="$prefix/bin/mig"
"$mig" man "$prefix/share/man/man1"
install -d "$prefix/share/bash-completion/completions" "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d"
"$mig" completions bash > "$prefix/share/bash-completion/completions/mig"
"$mig" completions zsh > "$prefix/share/zsh/site-functions/_mig"
"$mig" completions fish > "$prefix/share/fish/vendor_completions.d/mig.fish"
echo "installed $("$mig" --version) in $prefix"
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "note: $prefix/bin is not on your PATH" ;;
esac
