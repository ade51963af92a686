// Builds the chat UI into dist/, which the Go binary embeds (go:embed in
// ../main.go). The output must not depend on the machine or the time, since
// `make chat-web-check` rebuilds it and compares with the committed dist/:
// content-hashed file names, no source maps, no timestamps.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    reportCompressedSize: false,
  },
  server: {
    // `npm run dev` serves the UI with hot reload and sends the API and the
    // WebSocket to a chat server started with `go run ./examples/chat`.
    proxy: {
      "/api": "http://127.0.0.1:8080",
      "/rx": { target: "ws://127.0.0.1:8080", ws: true },
    },
  },
});
