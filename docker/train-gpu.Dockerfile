# Trainer with TensorFlow's CUDA backend: `@tensorflow/tfjs-node-gpu` 4.22 links libtensorflow 2.9.1,
# built against CUDA 11.2 and cuDNN 8.1, so the base image pins those. The role selects the GPU
# backend at run time (TRAIN_BACKEND=tensorflow-gpu forces it; otherwise it falls back to CPU).
# syntax=docker/dockerfile:1.7
FROM nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04 AS runtime
ARG NODE_MAJOR=20
ARG NODE_VERSION=20.20.2
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl gnupg \
 && curl -fsSL https://deb.nodesource.com/setup_${NODE_MAJOR}.x | bash - \
 && apt-get install -y --no-install-recommends "nodejs=${NODE_VERSION}-1nodesource1" build-essential python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL_CUDA=skip
COPY package.json package-lock.json ./
# tfjs-node-gpu downloads libtensorflow (GPU build) in its install script: allowed here.
RUN npm ci --no-audit --no-fund && npm rebuild @tensorflow/tfjs-node-gpu
COPY tsconfig.json tsconfig.build.json nest-cli.json ./
COPY src ./src
COPY migrations ./migrations
RUN npx nest build && npm prune --omit=dev
ENV NODE_ENV=production TRAIN_BACKEND=tensorflow-gpu
USER 10001
ENTRYPOINT ["node", "dist/main.js"]
CMD ["train"]
