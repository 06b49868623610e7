# syntax=docker/dockerfile:1
# For Docker/BuildKit users. The project itself builds its images without a
# container engine (`make images`, hack/images); this file produces the
# same layout: a static binary on an empty base, running as 65532.
#
#   docker build --target controller -t keeperlb-controller:0.1.0 .
#   docker build --target speaker    -t keeperlb-speaker:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 --target speaker ...

# The Go of go.mod (which refuses an older one).
ARG GO_VERSION=1.27.3

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
# Dependencies first, so that source edits reuse the module cache layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w" -o /out/ ./cmd/keeperlb-controller ./cmd/keeperlb-speaker
# The user database and /tmp of the base layer, as hack/images writes them.
RUN mkdir -p /rootfs/etc /rootfs/tmp /rootfs/home/nonroot && \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /rootfs/etc/passwd && \
    printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group && \
    chmod 1777 /rootfs/tmp && chown 65532:65532 /rootfs/home/nonroot && chmod 700 /rootfs/home/nonroot

FROM scratch AS base
COPY --from=build /rootfs/ /
USER 65532:65532
WORKDIR /
ENV PATH=/usr/local/bin:/usr/bin:/bin
LABEL org.opencontainers.image.source="https://github.com/keeperlb/keeperlb"

FROM base AS controller
COPY --from=build /out/keeperlb-controller /usr/local/bin/keeperlb-controller
LABEL org.opencontainers.image.title="keeperlb-controller"
ENTRYPOINT ["/usr/local/bin/keeperlb-controller"]

# The speaker image also runs as 65532 by default; its DaemonSet runs it as
# root with every capability dropped but NET_RAW (see config/speaker).
FROM base AS speaker
COPY --from=build /out/keeperlb-speaker /usr/local/bin/keeperlb-speaker
LABEL org.opencontainers.image.title="keeperlb-speaker"
ENTRYPOINT ["/usr/local/bin/keeperlb-speaker"]
