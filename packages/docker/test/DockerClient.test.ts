/**
 * The Docker client without an engine: `dockerode` (and the gRPC and protobuf packages it loads) is loaded by the
 * first client made, not by loading the module, which every run of the CLI does (a run on process sandboxes or an
 * ssh host never makes a client).
 */
import { assert, describe, it } from "@effect/vitest"
import * as child from "node:child_process"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..", "..", "..")

describe("DockerClient", () => {
  it("dockerode is loaded by the first client, not by the module", () => {
    const program = `
      import { createRequire } from "node:module"
      const DockerClient = await import("./packages/docker/src/DockerClient.ts")
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes("/dockerode/"))
      const before = loaded()
      DockerClient.make({ socketPath: "/nonexistent/docker.sock" })
      console.log(JSON.stringify({ before, after: loaded() }))`
    const r = child.spawnSync(process.execPath, ["--input-type=module", "-e", program], {
      cwd: root,
      encoding: "utf8"
    })
    assert.strictEqual(r.status, 0, r.stderr)
    assert.deepStrictEqual(JSON.parse(r.stdout.trim()), { before: false, after: true })
  })
})
