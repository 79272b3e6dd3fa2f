import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "scenarios/test/**/*.test.ts", "test/**/*.test.ts"],
    // Each test file's temporary files in a directory of its own, removed when it ends.
    setupFiles: ["test/fixtures/TestTmp.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
