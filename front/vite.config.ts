import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The hub serves dist/ at "/"; everything is bundled (air-gapped: no CDN, no web fonts).
// `KUBEWEIR_HUB=http://127.0.0.1:8080 npm run dev` proxies the API (and the stream) to a hub.
const hub = process.env.KUBEWEIR_HUB;

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
  },
  server: hub
    ? { proxy: { "/api": { target: hub, ws: true, changeOrigin: true }, "/auth": { target: hub }, "/saml": { target: hub } } }
    : undefined,
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
