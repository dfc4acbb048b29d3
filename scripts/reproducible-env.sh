# Sourced by scripts/release.sh and scripts/check-reproducible.sh: the environment that makes a build of
# the checked-out commit give the same bytes in any directory at any time. Run from the checkout's root.
# shellcheck shell=bash
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
STELLA_GIT_COMMIT=$(git rev-parse HEAD)
RUSTFLAGS="--remap-path-prefix=$PWD=/build/stella --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
TZ=UTC
LC_ALL=C
export SOURCE_DATE_EPOCH STELLA_GIT_COMMIT RUSTFLAGS TZ LC_ALL
umask 022
