import { assert, describe, it } from "@effect/vitest"
import { InheritedEnv } from "../src/index.ts"

describe("InheritedEnv", () => {
  it("passes on what a program needs to run, never the run's secrets or anything else", () => {
    assert.deepStrictEqual(
      InheritedEnv.inherited({
        PATH: "/usr/bin:/bin",
        LANG: "C.UTF-8",
        LC_ALL: "C",
        TZ: "UTC",
        TEZT_CLOUD_GRAFANA_TOKEN: "secret",
        TEZT_CLOUD_AUTH_PASSWORD: "secret",
        TEZTCLOUD_SLACK_BOT_TOKEN: "secret",
        AWS_SECRET_ACCESS_KEY: "secret",
        LC_: "not a locale variable",
        UNSET: undefined
      }),
      { PATH: "/usr/bin:/bin", LANG: "C.UTF-8", LC_ALL: "C", TZ: "UTC" }
    )
  })
})
