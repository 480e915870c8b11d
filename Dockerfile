# marketplace-relay: `relay serve` with the shipped relay.toml.
# The shipped config listens on 127.0.0.1 and keeps SQLite beside itself; for a
# real deployment mount your own relay.toml (host = "0.0.0.0", your smarthost,
# a PostgreSQL url) over /srv/relay/relay.toml.
FROM python:3.11-slim

WORKDIR /srv/relay
COPY pyproject.toml README.md ./
COPY relay/ relay/
COPY aliases/ aliases/
COPY filters/ filters/
COPY bounces/ bounces/
COPY migrations/ migrations/
RUN pip install --no-cache-dir . \
 && useradd --system --home-dir /srv/relay relay \
 && chown relay /srv/relay
COPY relay.toml ./

USER relay
EXPOSE 2525
STOPSIGNAL SIGTERM
CMD ["relay", "serve", "--config", "/srv/relay/relay.toml"]
