#!/bin/sh
# Container entrypoint: on first start, write an example config to /data and stop so the
# operator can edit it; otherwise run the bridge (extra arguments such as -g pass through).
set -eu
if [ ! -f /data/config.yaml ]; then
    python - <<'PY'
import importlib.resources
src = importlib.resources.files("teams_bridge").joinpath("example-config.yaml").read_text()
open("/data/config.yaml", "w").write(src)
PY
    echo "Wrote /data/config.yaml. Edit it (homeserver, appservice address, database,"
    echo "permissions), then run again with -g to generate /data/registration.yaml."
    exit 0
fi
exec python -m teams_bridge -c /data/config.yaml -r /data/registration.yaml "$@"
