/**
 * The built CLI is run only while fresh, scenario modules share its packages only when they import them by the
 * names it provides, and `--help` loads no backend, no monitoring stack and no website (checked on the sources,
 * where every module is its own file).
 */
import { assert, describe, it } from "@effect/vitest"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as url from "node:url"
import * as CliBuild from "../src/CliBuild.mjs"

const bin = path.join(import.meta.dirname, "..", "src", "bin.mjs")

/** A repository of one source, `a.ts`, and a manifest built at `built`. */
const fakeRepo = (built: number) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-clibuild-"))
  fs.mkdirSync(CliBuild.buildDir(root), { recursive: true })
  const manifest = { entry: "main.mjs", facades: {}, built, inputs: ["a.ts"] }
  fs.writeFileSync(path.join(CliBuild.buildDir(root), "manifest.json"), JSON.stringify(manifest))
  for (const file of ["a.ts", "package-lock.json"]) {
    fs.writeFileSync(path.join(root, file), "")
    fs.utimesSync(path.join(root, file), (built - 1000) / 1000, (built - 1000) / 1000)
  }
  return root
}

describe("CliBuild", () => {
  it("a build is fresh until a source or the lock is newer, or a source is gone", () => {
    const built = Date.now() - 60_000
    const root = fakeRepo(built)
    try {
      assert.strictEqual(CliBuild.fresh(root)?.entry, "main.mjs")
      fs.utimesSync(path.join(root, "a.ts"), (built + 1000) / 1000, (built + 1000) / 1000)
      assert.isUndefined(CliBuild.fresh(root), "a source newer than the build")
      fs.utimesSync(path.join(root, "a.ts"), (built - 1000) / 1000, (built - 1000) / 1000)
      fs.utimesSync(path.join(root, "package-lock.json"), (built + 1000) / 1000, (built + 1000) / 1000)
      assert.isUndefined(CliBuild.fresh(root), "the lock newer than the build")
      fs.utimesSync(path.join(root, "package-lock.json"), (built - 1000) / 1000, (built - 1000) / 1000)
      fs.rmSync(path.join(root, "a.ts"))
      assert.isUndefined(CliBuild.fresh(root), "a source removed")
      assert.isUndefined(CliBuild.fresh(path.join(root, "none")), "no build")
    } finally {
      fs.rmSync(root, { recursive: true, force: true })
    }
  })

  it("the start-up snapshot runs the CLI only while its build is fresh, in its repository, for the bundle's cases", () => {
    const built = Date.now() - 60_000
    const root = fakeRepo(built)
    const usable = (env: Record<string, string> = {}, at = root) =>
      CliBuild.snapshotUsable({ root: at, builtRoot: root, built, env })
    try {
      assert.isTrue(usable())
      assert.isFalse(CliBuild.snapshotUsable({ root, builtRoot: root, built: built + 1, env: {} }), "another build")
      assert.isFalse(usable({}, path.join(root, "moved")), "another repository")
      assert.isFalse(usable({ TEZT_CLOUD_SOURCES: "1" }), "the sources asked for")
      assert.isFalse(usable({ TEZT_CLOUD_SCENARIOS: "/x/Mine.ts" }), "scenario modules")
      fs.utimesSync(path.join(root, "a.ts"), (built + 1000) / 1000, (built + 1000) / 1000)
      assert.isFalse(usable(), "a source newer than the build")
    } finally {
      fs.rmSync(root, { recursive: true, force: true })
    }
  })

  it("the start-up snapshot runs the CLI, and hands a user's scenario modules to bin.mjs", () => {
    const blob = path.join(CliBuild.buildDir(), "startup.blob")
    // Built by the bootstrap; a build whose snapshot failed has none (the launcher runs bin.mjs then).
    if (!fs.existsSync(blob) || CliBuild.fresh() === undefined) return
    const run = (group: string, env: Record<string, string>) =>
      child.spawnSync(process.execPath, ["--snapshot-blob", blob, "--", group, "--list"], {
        encoding: "utf8",
        env: { ...process.env, TEZT_CLOUD_SOURCES: "", TEZT_CLOUD_SCENARIOS: "", ...env }
      })
    const own = run("BASIC", {})
    assert.strictEqual(own.status, 0, own.stderr)
    assert.include(own.stdout, "BASIC simple health")
    const scenarios = path.join(import.meta.dirname, "..", "..", "..", "test", "fixtures", "SignalScenarios.ts")
    const mine = run("TEST", { TEZT_CLOUD_SCENARIOS: scenarios })
    assert.strictEqual(mine.status, 0, `the scenario modules' group is known: ${mine.stderr}`)
    assert.include(mine.stdout, "TEST ")
  })

  it("a run started from the snapshot loads the packages it imports lazily (--open-telemetry's exporters)", () => {
    const blob = path.join(CliBuild.buildDir(), "startup.blob")
    assert.isTrue(fs.existsSync(blob) && CliBuild.fresh() !== undefined, "the bootstrap built a fresh snapshot")
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-clibuild-state-"))
    try {
      const r = child.spawnSync(
        process.execPath,
        [
          "--snapshot-blob",
          blob,
          "--",
          "BASIC",
          "simple",
          "health",
          "--localhost",
          "--open-telemetry",
          "--tezt-cloud",
          "otel"
        ],
        {
          encoding: "utf8",
          env: {
            ...process.env,
            TEZT_CLOUD_SOURCES: "",
            TEZT_CLOUD_SCENARIOS: "",
            TEZT_CLOUD_STATE_DIR: stateDir,
            OTEL_EXPORTER_OTLP_ENDPOINT: "",
            DOCKER_HOST: "unix:///nonexistent/tezt-cloud-no-docker.sock"
          }
        }
      )
      assert.strictEqual(r.status, 0, r.stderr)
      assert.include(r.stdout, "Hello world from agent 1")
      const spans = fs.globSync("otel/runs/*/spans.jsonl", { cwd: stateDir })
      assert.strictEqual(spans.length, 1, `the run's spans were written: ${r.stderr}`)
    } finally {
      fs.rmSync(stateDir, { recursive: true, force: true })
    }
  })

  it("scenario modules use the bundle's packages only when they import them by the facades' names", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-clibuild-"))
    const facades = { effect: "f1.mjs", "@tezt-cloud/core": "f2.mjs" }
    const write = (name: string, text: string) => {
      fs.writeFileSync(path.join(dir, name), text)
      return path.join(dir, name)
    }
    try {
      const barrels = write(
        "barrels.ts",
        `import { Effect } from "effect"\nimport { Scenario } from "@tezt-cloud/core"\n`
      )
      assert.isTrue(CliBuild.onlyFacades(barrels, facades))
      const direct = write("direct.ts", `import * as Schema from "effect/Schema"\n`)
      assert.isFalse(CliBuild.onlyFacades(direct, facades))
      const through = write("through.ts", `import { x } from "./helper.ts"\nimport * as fs from "node:fs"\n`)
      write("helper.ts", `export { Scenario } from "@tezt-cloud/core/Scenario"\nexport const x = 1\n`)
      assert.isFalse(CliBuild.onlyFacades(through, facades), "through a relative import")
      assert.isFalse(CliBuild.onlyFacades(`${barrels}:${direct}`, facades), "one of several modules")
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("--help loads no backend, ssh2, Docker or Google Cloud client, monitoring stack or website", () => {
    const program = `
      import { registerHooks } from "node:module"
      const urls = []
      registerHooks({ resolve: (specifier, context, next) => { const r = next(specifier, context); urls.push(r.url); return r } })
      process.on("exit", () => process.stderr.write("\\nLOADED " + JSON.stringify(urls)))
      process.argv.splice(1, 0, ${JSON.stringify(bin)})
      await import(${JSON.stringify(url.pathToFileURL(bin).href)})`
    const r = child.spawnSync(process.execPath, ["--input-type=module", "-e", program, "--", "--help"], {
      encoding: "utf8",
      env: { ...process.env, TEZT_CLOUD_SOURCES: "1", TEZT_CLOUD_SCENARIOS: "" }
    })
    assert.strictEqual(r.status, 0, r.stderr)
    assert.include(r.stdout, "SUBCOMMANDS")
    const loaded = JSON.parse(r.stderr.slice(r.stderr.indexOf("LOADED ") + 7)) as Array<string>
    assert.isTrue(loaded.some((u) => u.includes("/packages/cli/src/Cli.ts")), "the hook sees the CLI's modules")
    const heavy = loaded.filter((u) =>
      /\/packages\/(localhost|ssh|docker|gcp|proxy|monitoring|website)\/|node_modules\/(ssh2|dockerode|@google-cloud)\/|\/packages\/cli\/src\/Run\.ts|cloudJobs\.ts/
        .test(u)
    )
    assert.deepStrictEqual(heavy, [])
  })
})
