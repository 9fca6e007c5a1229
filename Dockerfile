# logwell's container image: built in one stage, run from a minimal one.
#
#   docker build -t logwell .
#   docker run -p 50051:50051 -v logwell-data:/data logwell serve --listen 0.0.0.0:50051 --insecure-no-auth
#
# The build needs no protoc (build.rs compiles the protos with protox) and no
# system SQLite (sqlx bundles it). The runtime image holds the binary and CA
# certificates only, and runs as an unprivileged user (65532, distroless's
# "nonroot"); /data is where the embedded SQLite file goes.

FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY migrations migrations
COPY src src
# benches/ and tests/ are not needed to build the binary, but Cargo.toml
# names the benchmarks: give it empty ones.
RUN mkdir benches && for bench in $(awk -F'"' '/^\[\[bench\]\]/ { getline; print $2 }' Cargo.toml); do \
        echo 'fn main() {}' > "benches/$bench.rs"; \
    done
RUN cargo build --release --locked --bin logwell && strip target/release/logwell

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/logwell /usr/local/bin/logwell
USER 65532:65532
WORKDIR /data
VOLUME /data
EXPOSE 50051
ENV LOGWELL_DATABASE_URL=sqlite:/data/logwell.db
ENTRYPOINT ["/usr/local/bin/logwell"]
CMD ["serve", "--listen", "0.0.0.0:50051"]
