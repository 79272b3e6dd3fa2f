import { configDefaults, defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "scenarios/test/**/*.test.ts", "test/**/*.test.ts"],
    // The GCP fault file is opt-in (`TEZT_CLOUD_FAULT_GCP=1`, see its header): left out, not skipped.
    exclude: [
      ...configDefaults.exclude,
      ...(process.env.TEZT_CLOUD_FAULT_GCP === "1" ? [] : ["test/faults/gcp.test.ts"])
    ],
    // Each test file's temporary files in a directory of its own, removed when it ends.
    setupFiles: ["test/fixtures/TestTmp.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
