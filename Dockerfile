# teams-bridge: a Matrix <-> Microsoft Teams puppeting bridge.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/teams-bridge
COPY pyproject.toml README.md ./
COPY teams_bridge ./teams_bridge
COPY config/docker-entrypoint.sh /usr/local/bin/teams-bridge-entrypoint
RUN pip install --no-cache-dir ".[e2ee]" \
    && useradd --system --home-dir /data --create-home --uid 1337 bridge

USER bridge
WORKDIR /data
VOLUME /data
EXPOSE 29340

# /data holds config.yaml, registration.yaml and, with SQLite, the database.
# The first run writes an example /data/config.yaml to edit; `-g` then writes the registration.
ENTRYPOINT ["/usr/local/bin/teams-bridge-entrypoint"]
