# syntax=docker/dockerfile:1
#
# daemonset-guard and certs-gen as static musl binaries in a distroless image with no shell.
#   docker build -t daemonset-guard:0.1.0 .
# Build stage: Alpine's Rust targets musl and links statically by default.
FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target directory between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p daemonset-guard -p certs-gen --bins \
 && mkdir -p /out \
 && cp target/release/daemonset-guard target/release/certs-gen /out/
# Fail the build rather than ship a binary that needs a dynamic loader the final image lacks.
RUN for b in /out/daemonset-guard /out/certs-gen; do \
      if grep -q 'ld-musl' "$b"; then echo "$b is dynamically linked" >&2; exit 1; fi; \
    done \
 && /out/daemonset-guard --version

# Final stage: no shell, no package manager; CA certificates and a nonroot user (65532) only.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="daemonset-guard" \
      org.opencontainers.image.description="Kubernetes admission webhook and linter that guards DaemonSets" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/daemonset-guard /out/certs-gen /usr/local/bin/
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/daemonset-guard"]
CMD ["serve"]
