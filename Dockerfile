# Multi-stage build: a static binary (CGO off) in a minimal non-root image.
# `make image` builds it as credbridge:dev (IMAGE in the Makefile), the tag
# deploy/compose.yaml and both kustomizations pull, with VERSION and COMMIT
# baked into the binary (`credbridge version`) and into the OCI labels.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/credbridge ./cmd/credbridge

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="credbridge" \
      org.opencontainers.image.description="Bridges the oscred and ec2blob access-key HTTP dialects" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.source="https://github.com/credbridge/credbridge" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/credbridge /usr/local/bin/credbridge
COPY config.yaml /etc/credbridge/config.yaml
# No listen address here: an image ENV would beat the config file a manifest
# mounts (a sidecar's loopback listen became 0.0.0.0). config.yaml keeps both
# listeners on loopback until each deployment states its own.
ENV CREDBRIDGE_CONFIG=/etc/credbridge/config.yaml
# distroless's nonroot, by number: runAsNonRoot can check a number, not a name.
USER 65532:65532
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD ["/usr/local/bin/credbridge", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/credbridge"]
CMD ["serve"]
