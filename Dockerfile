# MoE Studio image: `docker build -t moe-studio .` (runtime), `docker build --target test .` (runs npm test).
# The web server and the worker are the same image (compose.yaml runs `npm run worker` for the latter).
# Stages: deps (npm ci) → build (Prisma clients + Next production build) → runtime (non-root, no compilers,
# no browser) and test (adds Debian's chromium for the Playwright specs).

FROM node:20-bookworm-slim AS base
ENV NEXT_TELEMETRY_DISABLED=1 \
    ONNXRUNTIME_NODE_INSTALL=skip \
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
    npm_config_update_notifier=false
WORKDIR /app

FROM base AS deps
# better-sqlite3 builds from source when its prebuilt binary cannot be fetched.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM deps AS build
COPY . .
# Generates both Prisma clients and checks the migrations on a throwaway SQLite file, then builds Next.
RUN STUDIO_DATA_DIR=/tmp/build-data npm run setup && npx next build && rm -rf /tmp/build-data

FROM base AS runtime
# Debian's ffmpeg (with ffprobe) on PATH: preferred over the npm-shipped build (STUDIO_FFMPEG=auto).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 studio \
 && useradd --system --uid 10001 --gid studio --home-dir /app --shell /usr/sbin/nologin studio \
 && mkdir -p /data && chown studio:studio /data
COPY --from=build --chown=studio:studio /app /app
USER studio
ENV NODE_ENV=production \
    STUDIO_DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=3000 \
    LOG_FORMAT=json
EXPOSE 3000
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/api/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Applies pending migrations (SQLite or PostgreSQL, per DATABASE_URL), then serves. A bad setting stops here, naming it.
CMD ["sh", "-c", "npm run setup && exec npx next start -H \"$HOST\" -p \"$PORT\""]

FROM build AS test
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
 && rm -rf /var/lib/apt/lists/*
ENV CI=true
CMD ["npm", "test"]
