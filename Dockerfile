# Multi-stage build: compile in the Rust image, run in a slim Debian with only the
# shared libraries the binary links (OpenSSL for Kafka TLS, zlib).
#   docker build -t omnimeter:0.1.0 .
#   docker run --rm -p 9898:9898 -e OMNIMETER_METRICS_ADDR=0.0.0.0:9898 \
#     -v $PWD/config/omnimeter.toml:/etc/omnimeter/omnimeter.toml:ro omnimeter:0.1.0

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so source edits do not rebuild librdkafka and arrow.
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY crates crates
COPY benches benches
RUN cargo build --release --locked --bin omnimeter \
 && strip target/release/omnimeter

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/omnimeter --create-home omnimeter
COPY --from=build /src/target/release/omnimeter /usr/local/bin/omnimeter
COPY config/omnimeter.example.toml /etc/omnimeter/omnimeter.example.toml
USER omnimeter
WORKDIR /var/lib/omnimeter
ENV OMNIMETER_OUTPUT_DIR=/var/lib/omnimeter OMNIMETER_METRICS_ADDR=0.0.0.0:9898
EXPOSE 9898
ENTRYPOINT ["/usr/local/bin/omnimeter"]
CMD ["run", "--config", "/etc/omnimeter/omnimeter.toml"]
