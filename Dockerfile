# Builds the freshledger binary and runs it on a slim Debian.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends pkg-config make g++ && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked --bin freshledger

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/freshledger freshledger \
    && mkdir -p /var/lib/freshledger/data && chown freshledger /var/lib/freshledger/data
COPY --from=build /src/target/release/freshledger /usr/local/bin/freshledger
USER freshledger
WORKDIR /var/lib/freshledger
ENV FRESHLEDGER_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["freshledger"]
CMD ["serve"]
