# livekit-server for docker/compose.yaml's `server` and `demo` profiles, built from the Go
# module proxy at the version dtbridge's tests pin (scripts/setup-livekit-server.sh):
#
#   docker build -f livekit-server.Dockerfile -t dtbridge/livekit-server:v1.13.5 docker/
#
# GO_IMAGE and BASE swap the bases; machines that reach no registry (the CI) build this file
# unchanged on local stand-ins (docker/local-bases/, scripts/docker-images.sh).
# Written for the classic builder as well as BuildKit.
ARG GO_IMAGE=golang:1.26-bookworm
ARG BASE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
ARG LIVEKIT_SERVER_VERSION=v1.13.5
# go.mod has `replace` directives, so `go install module@version` refuses it: download the
# module and build its command in a writable copy.
RUN dir="$(cd / && GOFLAGS=-mod=mod go mod download -json github.com/livekit/livekit-server@$LIVEKIT_SERVER_VERSION \
      | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')" \
    && cp -r "$dir" /build && chmod -R u+w /build && cd /build \
    && CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -o /livekit-server ./cmd/server

FROM ${BASE} AS livekit-server
LABEL org.opencontainers.image.title="livekit-server" \
      org.opencontainers.image.description="LiveKit server, the version dtbridge's tests pin" \
      org.opencontainers.image.source="https://github.com/livekit/livekit-server" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin livekit
COPY --from=build /livekit-server /usr/local/bin/livekit-server
COPY livekit.yaml /etc/livekit.yaml
USER livekit
EXPOSE 7880 7881 7882/udp
HEALTHCHECK --interval=2s --timeout=2s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/7880"]
ENTRYPOINT ["livekit-server", "--config", "/etc/livekit.yaml"]
