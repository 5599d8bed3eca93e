#!/usr/bin/env bash
# Quick start: install the agent into .venv, copy a few real sample acquisitions into
# ./demo/instrument, and run the agent in the foreground, archiving to ./demo/archive.
# Stop it with Ctrl-C; run it again and it resumes. In another terminal, from this folder:
#   export PATH="$PWD/.venv/bin:$PATH" HARVEST_CONFIG="$PWD/config-examples/quickstart.yaml"
#   harvest status
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh runtime

mkdir -p demo/archive demo/instrument
put() {  # put SAMPLE OPERATOR/SESSION: copy a sample file or folder into a session folder, once
    local target
    target="demo/instrument/$2/$(basename "$1")"
    mkdir -p "demo/instrument/$2"
    # Never over an earlier run's copy (the agent has harvested it), and without cp -n,
    # whose exit status and warnings differ between coreutils versions.
    [ -e "$target" ] || cp -r "tests/data/$1" "$target"
}
put ome-tiff/aics/s_1_t_1_c_1_z_1.ome.tiff alice/2026-11-22_spinning-disk
put ome-tiff/multifile-master alice/2026-11-22_z-stack
put tiff/micromanager/181003_multi_pos_time_course_1_MMStack.ome.tif bob/time-course
put dicom/series/CT_5slice carol/ct-series
cat <<EOF
Watching demo/instrument, archiving to demo/archive (Ctrl-C to stop).
In another terminal, from $PWD:
  export PATH="\$PWD/.venv/bin:\$PATH" HARVEST_CONFIG="\$PWD/config-examples/quickstart.yaml"
  harvest status
EOF
exec .venv/bin/harvest run --config config-examples/quickstart.yaml
