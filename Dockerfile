# marketplace-relay: `relay serve` with contrib/docker-relay.toml as its relay.toml:
# one node on SQLite in the volume /var/lib/relay, SMTP on port 2525 of every address
# of the container, the HTTP API on 8025, /metrics and /healthz on 9101. Nothing leaves
# until you name a next hop. For a real deployment mount your own relay.toml over
# /srv/relay/relay.toml (docker-compose.yml does: PostgreSQL and two nodes); the README's
# "Running in production" says what to set. `docker stop -t 45`: the relay drains for
# [server] shutdown_grace (30 s) after SIGTERM, longer than Docker's default 10 s.
FROM python:3.11-slim

# Tesseract reads the text in images for the content rules; without it they follow
# [filters.images] when_unreadable.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr \
      tesseract-ocr-eng tesseract-ocr-spa tesseract-ocr-ita tesseract-ocr-ind \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/relay
COPY pyproject.toml README.md ./
COPY relay/ relay/
COPY aliases/ aliases/
COPY filters/ filters/
COPY bounces/ bounces/
COPY migrations/ migrations/
RUN pip install --no-cache-dir . \
 && useradd --system --user-group --home-dir /srv/relay relay \
 && chown relay /srv/relay \
 && install -d -o relay -g relay -m 0700 /var/lib/relay
COPY contrib/docker-relay.toml ./relay.toml

# `docker exec CONTAINER relay ...` (api token create, queue list, db upgrade) reads the same file.
ENV RELAY_CONFIG=/srv/relay/relay.toml
USER relay
VOLUME /var/lib/relay
# SMTP, the HTTP API and operator console, /metrics and /healthz
EXPOSE 2525 8025 9101
STOPSIGNAL SIGTERM
CMD ["relay", "serve", "--config", "/srv/relay/relay.toml"]
