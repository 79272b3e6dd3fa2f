import { defineConfig } from "vitest/config"

/** The variable through which `npm test` (`scripts/test.ts`) gives a lane its files: a JSON list of paths. */
export const laneFiles = "TEZT_CLOUD_TEST_LANE_FILES"

const lane = process.env[laneFiles]

export default defineConfig({
  test: {
    include: lane !== undefined && lane !== ""
      ? JSON.parse(lane)
      : ["packages/*/test/**/*.test.ts", "scenarios/test/**/*.test.ts", "test/**/*.test.ts"],
    // Each test file's temporary files in a directory of its own, removed when it ends.
    setupFiles: ["test/fixtures/TestTmp.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
