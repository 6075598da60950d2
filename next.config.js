/** @type {import('next').NextConfig} */
const nextConfig = {
  // Native and heavy server packages stay outside the server bundle.
  serverExternalPackages: ["better-sqlite3", "@prisma/adapter-better-sqlite3", "onnxruntime-node", "sharp"],
  typedRoutes: false,
  poweredByHeader: false,
  experimental: { serverActions: { bodySizeLimit: "2mb" } },
};

module.exports = nextConfig;
