# Burrow server image: compiled in Deno's image, run from distroless as non-root.
#   docker build -t burrowd .
#   docker run -p 7000:7000 -p 7500:7500 -v burrow-data:/data burrowd

ARG DENO_VERSION=2.9.6

FROM denoland/deno:debian-${DENO_VERSION} AS build
WORKDIR /src
COPY deno.json deno.lock ./
COPY main_server.ts main_client.ts ./
COPY lib ./lib
COPY sql ./sql
COPY scripts ./scripts
RUN deno install --frozen --entrypoint main_server.ts main_client.ts
RUN deno run --allow-read --allow-write --allow-run --allow-env --allow-net scripts/build.ts \
      --target "$(uname -m | sed 's/arm64/aarch64/')-unknown-linux-gnu" --out dist \
 && cp dist/burrowd-*-linux-gnu /burrowd \
 && mkdir -p /data && chown 65532:65532 /data

# cc: glibc and libgcc, which the Deno runtime links against.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /burrowd /usr/local/bin/burrowd
COPY --from=build --chown=65532:65532 /data /data
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
# Control channel and admin port (/healthz, /readyz, later /metrics and the API).
EXPOSE 7000 7500
ENV BURROW_CACHE_DIR=/data/.cache
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/burrowd", "healthcheck", "--url", "http://127.0.0.1:7500/healthz"]
ENTRYPOINT ["/usr/local/bin/burrowd"]
# Admin on all interfaces inside the container, so the port can be published.
CMD ["run", "--data-dir", "/data", "--admin-addr", "0.0.0.0"]
