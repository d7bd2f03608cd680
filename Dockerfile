# syntax=docker/dockerfile:1
# One image for the operator (`smolstage operator`) and the trainer worker (`smolstage worker`):
# Node 22, the compiled TypeScript, and the native trainer addon. Build from the repository root:
#
#   docker build -t smolstage:0.1.0 .          # CPU backend
#   # CPU + CUDA backends:
#   docker build -t smolstage:0.1.0-cuda \
#     --build-arg BUILD_BASE=nvidia/cuda:13.0.2-devel-ubuntu24.04 \
#     --build-arg RUNTIME_BASE=nvidia/cuda:13.0.2-runtime-ubuntu24.04 \
#     --build-arg SMOLSTAGE_CUDA=ON .
#
# The build needs only the image registry, the Debian/Ubuntu apt mirrors and the npm registry.
# Without a registry, test/image/build-and-run.sh makes the base images from the Debian mirror
# and builds and runs this file with buildah (docs/install.md, "The image").

# Node comes from the official image in both variants, so the CUDA variant runs the same Node.
ARG NODE_IMAGE=node:22.23.3-bookworm-slim
ARG BUILD_BASE=debian:bookworm-slim
ARG RUNTIME_BASE=debian:bookworm-slim

FROM ${NODE_IMAGE} AS node

FROM ${BUILD_BASE} AS build
# OFF: CPU backend only; ON: also the CUDA backend (needs a BUILD_BASE with nvcc and cuBLAS).
ARG SMOLSTAGE_CUDA=OFF
# GPU architectures to emit SASS for (90: H100/H200); see docs/install.md.
ARG CUDA_ARCHITECTURES=90
ARG BUILD_JOBS=4
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates cmake g++ make ninja-build python3 libopenblas-dev libgloo-dev \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/include/node /usr/local/include/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
WORKDIR /src
# Dependencies first: this layer is reused until a package manifest or the lockfile changes.
COPY package.json package-lock.json tsconfig.base.json ./
COPY operator/package.json operator/
COPY trainer-native/package.json trainer-native/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY trainer-native/ trainer-native/
COPY operator/ operator/
# Portable code (no -march=native: the image runs on other CPUs than the builder's); no C++ test
# or benchmark binaries in the image. Node headers come from the copied Node install.
RUN cd trainer-native \
 && npm_config_nodedir=/usr/local npx cmake-js build --out build --config Release --parallel "${BUILD_JOBS}" \
      --CDSMOLSTAGE_NATIVE_ARCH=OFF --CDSMOLSTAGE_BUILD_TESTS=OFF --CDSMOLSTAGE_BUILD_BENCH=OFF --CDSMOLSTAGE_GLOO=ON \
      --CDSMOLSTAGE_CUDA="${SMOLSTAGE_CUDA}" --CDCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES}" \
 && npx tsc -p tsconfig.json \
 && cd .. && npx tsc -p operator/tsconfig.json \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund
# The runtime tree keeps the workspace layout, so node_modules/@smolstage/* symlinks resolve.
RUN mkdir -p /app/operator /app/trainer-native/build/Release \
 && cp -a package.json node_modules /app/ \
 && cp -a operator/package.json operator/bin operator/dist /app/operator/ \
 && cp -a trainer-native/package.json trainer-native/presets.json trainer-native/dist /app/trainer-native/ \
 && cp trainer-native/build/Release/smolstage_trainer.node /app/trainer-native/build/Release/ \
 && find /app/operator/dist -name '*.test.js*' -delete

FROM ${RUNTIME_BASE}
ENV DEBIAN_FRONTEND=noninteractive
# The addon's shared libraries: OpenBLAS, Gloo (data-parallel cpu training) and the GCC OpenMP
# runtime (cuBLAS and NCCL come with a CUDA base).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libopenblas0 libgloo0 libgomp1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=build /app /app
# `smolstage run` without a file runs /app/examples/quickstart.yaml (the CPU quickstart).
COPY examples/*.yaml /app/examples/
# 65532: the uid the chart and the operator's trainer pods run as (runAsNonRoot needs a number).
RUN ln -s /app/operator/bin/smolstage.js /usr/local/bin/smolstage \
 && groupadd --system --gid 65532 smolstage \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin smolstage \
 && smolstage --help >/dev/null
ENV NODE_ENV=production
USER 65532:65532
WORKDIR /app
ENTRYPOINT ["smolstage"]
CMD ["--help"]
