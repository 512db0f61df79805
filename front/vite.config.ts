import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The hub serves dist/ at "/"; everything is bundled (air-gapped: no CDN, no web fonts).
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
