#!/usr/bin/env bash
# Quick start: install the agent into .venv, copy a few real sample acquisitions into
# ./demo/instrument, and run the agent in the foreground, archiving to ./demo/archive.
# Stop it with Ctrl-C; run it again and it resumes. In another terminal:
#   .venv/bin/harvest status --config config-examples/quickstart.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
HARVEST_SKIP_NODE=1 bash scripts/bootstrap.sh

mkdir -p demo/archive demo/instrument
put() {  # put SAMPLE OPERATOR/SESSION: copy a sample file or folder into a session folder
    mkdir -p "demo/instrument/$2"
    cp -rn "tests/data/$1" "demo/instrument/$2/"
}
put ome-tiff/aics/s_1_t_1_c_1_z_1.ome.tiff alice/2026-11-22_spinning-disk
put ome-tiff/multifile-master alice/2026-11-22_z-stack
put tiff/micromanager/181003_multi_pos_time_course_1_MMStack.ome.tif bob/time-course
put dicom/series/CT_5slice carol/ct-series
echo "Watching demo/instrument, archiving to demo/archive (Ctrl-C to stop)."
exec .venv/bin/harvest run --config config-examples/quickstart.yaml
