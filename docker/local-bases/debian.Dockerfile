# dtbridge-local/debian: Debian 12 with ca-certificates and this machine's extra CAs (CONTEXT/ca/).
ARG BASE=dtbridge-local/debian-minbase:bookworm
FROM ${BASE}
COPY ca/ /usr/local/share/ca-certificates/
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && update-ca-certificates
