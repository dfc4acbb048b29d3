#!/usr/bin/env bash
# Proves the build is reproducible: clones the checked-out commit into two directories, builds in each
# with the release environment (scripts/reproducible-env.sh), the second a few seconds after the first,
# and compares the outputs byte for byte. Exit 0 when identical, 1 (naming the files) when not.
#   scripts/check-reproducible.sh --crate NAME   one crate's release rlib (cheap: what the tests run)
#   scripts/check-reproducible.sh --release      the whole release: scripts/release.sh twice, every file
#                                                of dist/ compared (two release builds: long)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts=$PWD/scripts
mode=${1:-}
case "$mode" in
  --crate) crate=${2:?usage: --crate NAME} ;;
  --release) ;;
  *) sed -n '2,7p' "$0"; exit 2 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
commit=$(git rev-parse HEAD)
for side in a b; do
  dir="$work/$side/checkout-$side"
  mkdir -p "$work/$side"
  git clone --quiet --no-hardlinks . "$dir"
  git -C "$dir" checkout --quiet "$commit"
  (
    cd "$dir"
    # shellcheck source=scripts/reproducible-env.sh
    . "$scripts/reproducible-env.sh"
    if [ "$mode" = --crate ]; then
      cargo build --quiet --locked --release -p "$crate"
      mkdir -p "$work/$side/out"
      cp target/release/lib"${crate//-/_}".rlib "$work/$side/out/"
    else
      scripts/release.sh --out "$work/$side/out"
    fi
  )
  sleep 2
done
if diff -r "$work/a/out" "$work/b/out" >/dev/null; then
  echo "reproducible: $(cd "$work/a/out" && find . -type f | wc -l) files identical across two builds of $commit"
  (cd "$work/a/out" && find . -type f -exec sha256sum {} +)
else
  echo "NOT reproducible: these differ between two builds of $commit:" >&2
  diff -rq "$work/a/out" "$work/b/out" >&2 || true
  exit 1
fi
