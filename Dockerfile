# The operator image: a release build, then only the binary, the C libraries it links,
# a CA bundle and a passwd entry, run as user 65532. No shell, no package manager.
#
#   docker build -t roster:0.1.0 .        (or podman/buildah; any OCI builder)
#
# hack/image.sh builds the same filesystem with the same script and packs it without a
# daemon (umoci); docs/install.md says how to publish either.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin roster \
 && hack/image-rootfs.sh target/release/roster /rootfs

FROM scratch
COPY --from=build /rootfs /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/roster"]
CMD ["run"]
