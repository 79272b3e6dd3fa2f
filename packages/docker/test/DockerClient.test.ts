/**
 * The Docker client without an engine: `dockerode` (and the gRPC and protobuf packages it loads) is loaded by a
 * client's first call, not by loading the module nor by making the client, which every run of the CLI may do (a run
 * on process sandboxes or an ssh host never calls the engine), nor by a probe of a socket that is not there (the
 * proxy's orchestrator, a host without Docker, asks whether an engine answers).
 */
import { assert, describe, it } from "@effect/vitest"
import * as child from "node:child_process"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..", "..", "..")

describe("DockerClient", () => {
  it("dockerode is loaded by a client's first call, not by the module, by making the client nor by a probe of a missing socket", () => {
    const program = `
      import { createRequire } from "node:module"
      const DockerClient = await import("./packages/docker/src/DockerClient.ts")
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes("/dockerode/"))
      const before = loaded()
      const client = DockerClient.make({ socketPath: "/nonexistent/docker.sock" })
      const made = loaded()
      const { Effect } = await import("effect")
      const answers = await Effect.runPromise(DockerClient.probe({ socketPath: "/nonexistent/docker.sock" }))
      const probed = loaded()
      await Effect.runPromise(Effect.exit(client.ping))
      console.log(JSON.stringify({ before, made, answers, probed, after: loaded() }))`
    const r = child.spawnSync(process.execPath, ["--input-type=module", "-e", program], {
      cwd: root,
      encoding: "utf8"
    })
    assert.strictEqual(r.status, 0, r.stderr)
    assert.deepStrictEqual(JSON.parse(r.stdout.trim()), {
      before: false,
      made: false,
      answers: false,
      probed: false,
      after: true
    })
  })
})
