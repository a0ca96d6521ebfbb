# Shared by scripts/run and scripts/test: configure and build into a directory.
# usage: tally_build DIR [cmake args...]
tally_build() {
    local dir=$1
    shift
    mkdir -p "$dir"
    local jobs
    jobs=$(nproc 2>/dev/null || echo 2)
    cmake -S "$TALLY_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >"$dir/configure.log" 2>&1 ||
        { cat "$dir/configure.log" >&2; return 1; }
    cmake --build "$dir" -j "$jobs" -- --no-print-directory >"$dir/build.log" 2>&1 ||
        { cat "$dir/build.log" >&2; return 1; }
}
