# syntax=docker/dockerfile:1
# vigil's image: built with the Rust toolchain, run on Debian slim as a
# non-root user. The shipped rules and a container config are baked in at
# /etc/vigil; mount over either to replace them (the Helm chart does).
#
#   docker build --build-arg VIGIL_GIT_COMMIT=$(git rev-parse HEAD) -t vigil .
#   docker run --rm -p 9464:9464 vigil          # the demo stream; metrics on :9464

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
# librdkafka (built from source by rdkafka-sys) links the system OpenSSL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# No .git in the build context: the commit for vigil_build_info comes in here.
ARG VIGIL_GIT_COMMIT=unknown
ENV VIGIL_GIT_COMMIT=${VIGIL_GIT_COMMIT}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin vigil \
 && install -D -m 0755 target/release/vigil /out/vigil

FROM debian:${DEBIAN}-slim
# libssl3 for librdkafka's TLS; CA certificates for Kafka, SMTP and webhooks
# over TLS. Time zones are compiled into vigil (chrono-tz).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 vigil \
 && useradd --system --uid 10001 --gid vigil --no-create-home --home-dir /var/lib/vigil --shell /usr/sbin/nologin vigil \
 && install -d -o vigil -g vigil -m 0750 /var/lib/vigil
COPY --from=build /out/vigil /usr/local/bin/vigil
COPY rules /etc/vigil/rules
COPY docker/vigil.yml /etc/vigil/vigil.yml
USER 10001:10001
WORKDIR /var/lib/vigil
VOLUME ["/var/lib/vigil"]
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/vigil"]
CMD ["run", "--config", "/etc/vigil/vigil.yml"]
