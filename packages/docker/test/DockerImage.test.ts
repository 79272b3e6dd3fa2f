/**
 * Agent images without an engine: the tag of a run's image never collides across namespaces and aliases, and the
 * `git` asked for the build's `COMMIT` gets what a program needs of the orchestrator's environment and its own
 * `GIT_*` variables, never the run's secrets.
 */
import { assert, describe, it } from "@effect/vitest"
import { AgentConfig, Orchestrator, TestCloud } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DockerImage } from "../src/index.ts"

describe("DockerImage", () => {
  it("tags never collide: namespace and alias are part of the hash, not only of the readable name", () => {
    const args = { SSH_PUBLIC_KEY: "k" }
    const tags = [
      DockerImage.tagFor("a", "b-x", args),
      DockerImage.tagFor("a-b", "x", args),
      DockerImage.tagFor("A", "x", args),
      DockerImage.tagFor("a", "x", args)
    ]
    assert.strictEqual(new Set(tags).size, tags.length, tags.join(" "))
  })

  it.effect("the git asked for COMMIT gets no secret of the orchestrator's environment", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-git-"))
      const seen = path.join(dir, "environment")
      // A `git` first on PATH that tells its environment and answers with a fixed commit.
      fs.writeFileSync(path.join(dir, "git"), `#!/bin/sh\nenv > ${seen}\necho 0123abcd\n`, { mode: 0o755 })
      const canaries = {
        TEZT_CLOUD_GRAFANA_TOKEN: `canary-grafana-${process.pid}`,
        TEZTCLOUD_SLACK_BOT_TOKEN: `canary-slack-${process.pid}`,
        TEZT_CLOUD_AUTH_PASSWORD: `canary-password-${process.pid}`
      }
      const before = { ...process.env }
      const config = yield* TestCloud.config({ tezt_cloud: "img", localhost: true })
      const [agent] = AgentConfig.complete([{}], Orchestrator.agentDefaults(config))
      const { args, environment } = yield* Effect.sync(() => {
        Object.assign(process.env, canaries, { PATH: `${dir}:${process.env.PATH}`, GIT_DIR: "/nowhere/.git" })
        return { args: DockerImage.buildArgs(agent!, "ssh-ed25519 AAAA"), environment: fs.readFileSync(seen, "utf8") }
      }).pipe(Effect.ensuring(Effect.sync(() => {
        for (const name of [...Object.keys(canaries), "GIT_DIR"]) delete process.env[name]
        Object.assign(process.env, before)
        fs.rmSync(dir, { recursive: true, force: true })
      })))
      assert.strictEqual(args.COMMIT, "0123abcd")
      for (const value of Object.values(canaries)) assert.notInclude(environment, value)
      assert.match(environment, /^GIT_DIR=\/nowhere\/\.git$/m, "git keeps its own variables")
      assert.match(environment, /^PATH=/m)
    }))
})
