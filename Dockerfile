# syntax=docker/dockerfile:1
#
# hypervisord container image: a static binary on distroless, non-root, for a
# read-only root file system. See README, "Deployment".
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t hypersdk/hypervisord .
#   docker run -d --name hypersdk --read-only --tmpfs /tmp \
#     -v hypersdk-data:/var/lib/hypersdk -p 8080:8080 hypersdk/hypervisord --demo
#
# deploy/deploy_test.go checks this file's rules and builds and starts the
# binary the way this file does.

# The Go release of go.mod's go directive.
ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
# Pure Go (the SQLite driver is modernc.org/sqlite): static, no libc needed.
# The same command as `make build`, plus the cross-compilation target.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-X main.version=${VERSION}" -o /out/ ./cmd/...
# The data directory, owned by the runtime user: the final stage has no
# shell to create it, and COPY --from keeps owner and mode.
RUN mkdir -p /rootfs/var/lib/hypersdk \
 && chown 65532:65532 /rootfs/var/lib/hypersdk \
 && chmod 0700 /rootfs/var/lib/hypersdk

# distroless/static: CA certificates, /etc/passwd with nonroot (65532), /tmp;
# no shell, no package manager. The daemon runs no external program, and
# time zones are compiled into the binary.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="hypervisord" \
      org.opencontainers.image.description="HyperSDK: export VMs from vSphere, AWS, Azure, GCP, Hyper-V and Proxmox VE to OVF/OVA/disk images" \
      org.opencontainers.image.source="https://github.com/hypersdk/hypersdk" \
      org.opencontainers.image.documentation="https://github.com/hypersdk/hypersdk#deployment" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/hypervisord /out/hyperctl /usr/local/bin/
COPY --from=build /rootfs/var/lib/ /var/lib/
COPY deploy/container/hypervisord.yaml /etc/hypersdk/hypervisord.yaml
ENV HYPERSDK_CONFIG=/etc/hypersdk/hypervisord.yaml \
    HYPERSDK_DATA_DIR=/var/lib/hypersdk \
    TMPDIR=/tmp
USER 65532:65532
# The database (SQLite by default), node id, admin token and default export
# directory live here; the root file system can then be read-only (/tmp, used
# by --demo and for SSH known-hosts files, needs a tmpfs then).
VOLUME ["/var/lib/hypersdk"]
EXPOSE 8080
# Exec form: the image has no shell. The probe reads the same configuration
# as the daemon, so it follows api.listen and TLS.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/hypervisord", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/hypervisord"]
