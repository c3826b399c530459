# syntax=docker/dockerfile:1.7
#
# Miz: one image for `desk serve`, `desk worker` and `desk migrate` (see helm/desk and
# docs/OPERATIONS.md).
#
#   docker build -t miz/desk:0.1.0 .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=postgres://... miz/desk:0.1.0           # web
#   docker run --rm -e DATABASE_URL=postgres://... miz/desk:0.1.0 worker                 # jobs
#   docker run --rm -e DATABASE_URL=postgres://... miz/desk:0.1.0 migrate                # schema
#
# Configuration is the usual tree (defaults < DESK_CONFIG file < DESK_* environment, and
# DESK_..._FILE reads a secret from a file). The image sets two keys through the environment,
# so they win over a config file: web.themes_dir and http.listen (override them with -e).

############################################################################################
# The exact version pinned in rust-toolchain.toml (rust:1.95-bookworm would float to 1.95.x and
# make rustup download 1.95.0 anyway).
FROM rust:1.95.0-bookworm AS builder

# rust-toolchain.toml also asks for rustfmt and clippy. RUSTUP_TOOLCHAIN names the image's own
# 1.95.0 toolchain, which overrides the file, so rustup does not go online to add components
# that a release build does not use.
ENV RUSTUP_TOOLCHAIN=1.95.0 \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

WORKDIR /src
# The whole workspace: every member (tests/ included) is needed to resolve Cargo.lock; the SQL
# of migrations/ and the theme's font are embedded into the binary at compile time (templates
# are read at run time and copied into the runtime image below).
COPY . .

# Registry, git and target caches survive between builds (BuildKit); the binary is copied out
# of the cached target/ because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release -p desk --locked \
 && install -D -m 0755 target/release/desk /out/desk

############################################################################################
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="desk" \
      org.opencontainers.image.description="Miz (میز خدمت): the service desk of Iran's municipalities" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later"

# ca-certificates: TLS to SMS providers, S3-compatible stores and PostgreSQL (rustls with the
# system's roots). Nothing else: no shell tools are needed at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 desk \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/desk --no-create-home \
        --shell /usr/sbin/nologin desk \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/desk

COPY --from=builder /out/desk /usr/local/bin/desk
# Templates are read from disk at run time (`web.themes_dir`, holding base/templates).
COPY themes/ /usr/share/desk/themes/

# web.themes_dir: the default in the binary is the build machine's source tree, so point it at
# the copy above. http.listen: the default (127.0.0.1:8080) is unreachable from outside a
# container. web.uploads_dir keeps its relative default (.desk/uploads), which lands under the
# working directory /var/lib/desk; mount a volume there, or configure [storage] S3.
ENV DESK_WEB__THEMES_DIR=/usr/share/desk/themes \
    DESK_HTTP__LISTEN=0.0.0.0:8080

WORKDIR /var/lib/desk
USER 10001:10001
EXPOSE 8080

# `desk` handles SIGTERM itself (graceful HTTP shutdown; workers finish running jobs for up to
# 10 s), so it runs as PID 1 without an init.
ENTRYPOINT ["desk"]
CMD ["serve"]
