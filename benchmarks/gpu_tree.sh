#!/usr/bin/env bash
# The device tool takes at most 64 MiB of working tree, and the tracked files are about 52 MiB
# before GDAL's wheel (29 MB) is carried. `hide` sets aside the tracked files that the GPU
# benchmarks never read (docs, tests, model weights, samples other than the one that
# benchmarks/inputs.py reads) and takes them out of the index, so they neither travel nor show
# as deleted; `restore` puts them back exactly. Never commit between the two.
#
#   bash benchmarks/gpu_tree.sh hide      # before the device call(s)
#   bash benchmarks/gpu_tree.sh restore   # right after
set -eu
cd "$(dirname "$0")/.."
STASH=${GPU_TREE_STASH:-/tmp/sarclear-gpu-tree.tar}
case "${1:-}" in
hide)
    [ ! -e "$STASH" ] || { echo "$STASH exists: run 'restore' first"; exit 1; }
    git diff --quiet HEAD || { echo "commit your changes first: hidden files are restored from the stash"; exit 1; }
    list=$(mktemp)
    git ls-files docs tests 'resources/models/*.safetensors' resources/samples \
        | grep -v '^resources/samples/sen12ms-cr-cloudy/' > "$list"
    tar -cf "$STASH" -T "$list"
    tr '\n' '\0' < "$list" | xargs -0 git rm -q --cached
    tr '\n' '\0' < "$list" | xargs -0 rm -f
    echo "hidden: $(wc -l < "$list") files ($STASH); what travels now:"
    git ls-files -z | xargs -0 du -cb | tail -1
    rm -f "$list"
    ;;
restore)
    tar -xf "$STASH"
    git reset -q
    rm -f "$STASH"
    git status --short
    ;;
*)
    echo "usage: gpu_tree.sh hide|restore"; exit 2
    ;;
esac
