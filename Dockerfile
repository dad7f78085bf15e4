# hearth in a container: `docker build -t hearth .`, then
# `docker run -p 11434:11434 -v hearth-models:/models hearth`.
#
# The binary detects the CPU's features at run time (no target-cpu=native),
# so one image is fast on every x86-64 host it lands on.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p hearth --bin hearth \
    && strip target/release/hearth

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/hearth --create-home hearth \
    && mkdir -p /models && chown hearth:hearth /models
COPY --from=build /src/target/release/hearth /usr/local/bin/hearth
USER 10001:10001
# Inside a container the server must listen on every interface; the store is
# a volume (mount it read-only to share it between replicas).
ENV HEARTH_HOST=0.0.0.0:11434 \
    HEARTH_MODELS=/models
EXPOSE 11434
VOLUME ["/models"]
ENTRYPOINT ["/usr/local/bin/hearth"]
CMD ["serve"]
