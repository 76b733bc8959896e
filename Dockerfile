# Multi-stage build: a static binary (CGO off) in a minimal non-root image.
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
COPY --from=build /out/credbridge /usr/local/bin/credbridge
COPY config.yaml /etc/credbridge/config.yaml
# In a container the listeners must leave loopback; the admin port stays internal.
ENV CREDBRIDGE_CONFIG=/etc/credbridge/config.yaml \
    CREDBRIDGE_LISTEN=0.0.0.0:8080 \
    CREDBRIDGE_ADMIN_LISTEN=0.0.0.0:9090
USER nonroot:nonroot
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD ["/usr/local/bin/credbridge", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/credbridge"]
CMD ["serve"]
