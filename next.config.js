/** @type {import('next').NextConfig} */
const nextConfig = {
  // A separate build dir lets several checkouts/agents build side by side (NEXT_DIST_DIR=.next-foo).
  distDir: process.env.NEXT_DIST_DIR || ".next",
  // Native and heavy server packages stay outside the server bundle.
  serverExternalPackages: ["better-sqlite3", "@prisma/adapter-better-sqlite3", "onnxruntime-node", "sharp", "@node-rs/argon2", "quickjs-emscripten-core", "@jitl/quickjs-wasmfile-release-sync", "bullmq", "pg", "@prisma/adapter-pg", "@aws-sdk/client-s3", "pino", "pino-pretty", "prom-client"],
  typedRoutes: false,
  poweredByHeader: false,
  experimental: { serverActions: { bodySizeLimit: "2mb" } },
  // Pages get their Content-Security-Policy (with a nonce) from proxy.ts; these hold for every response.
  async headers() {
    return [
      { source: "/:path*", headers: [{ key: "X-Frame-Options", value: "SAMEORIGIN" }, { key: "X-Content-Type-Options", value: "nosniff" }, { key: "Referrer-Policy", value: "same-origin" }] },
      { source: "/api/:path*", headers: [{ key: "Content-Security-Policy", value: "default-src 'none'; frame-ancestors 'self'; sandbox" }] },
      // Answers that depend on who asks: no shared cache in front of the app may keep one user's answer for the next.
      { source: "/api/trpc/:path*", headers: [{ key: "Cache-Control", value: "private, no-store" }] },
      { source: "/api/v1/:path*", headers: [{ key: "Cache-Control", value: "private, no-store" }] },
    ];
  },
};

module.exports = nextConfig;
