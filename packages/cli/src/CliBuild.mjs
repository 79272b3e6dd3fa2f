// @ts-check
/**
 * The built CLI (`.build/cli/`, made by `scripts/build-cli.ts`, which `scripts/bootstrap.sh` runs): which module
 * `bin.mjs` loads, the bundle while it is fresh, the TypeScript sources otherwise, and Node's compile cache.
 *
 * **Details**
 *
 * - Fresh: the build's manifest lists every workspace source it was made from; none of them (nor
 *   `package-lock.json`) may be newer than the build's start, and all must exist. About 160 `stat`s, under a
 *   millisecond: a stale bundle is never run, whoever starts the CLI.
 * - `TEZT_CLOUD_SOURCES=1` runs the sources (to compare, or to debug with their file names).
 * - A user's scenario modules (`$TEZT_CLOUD_SCENARIOS`) import `effect` and the workspace's packages: with the
 *   bundle, those names resolve to the bundle's own modules (its "facades"), so that the scenarios and the CLI
 *   share one copy of each (`instanceof CloudError`, services). A module that imports another name of those
 *   packages (`effect/Schema`, `@tezt-cloud/core/Scenario`…), directly or through a relative import, runs the
 *   sources instead: two copies of `effect` in one process are not an option.
 * - The compile cache (`.build/compile-cache/`) keeps V8's compiled code of every module loaded, bundle or
 *   sources, across runs.
 *
 * Plain JavaScript without dependencies, like `bin.mjs`: it runs before anything else is loaded.
 */
import * as fs from "node:fs"
import * as module from "node:module"
import * as path from "node:path"
import * as url from "node:url"

/** The repository this file is in. */
export const repoRoot = path.resolve(path.dirname(url.fileURLToPath(import.meta.url)), "..", "..", "..")

/** Where the build of the repository at `root` is. */
export const buildDir = (root = repoRoot) => path.join(root, ".build", "cli")

/**
 * @typedef {{
 *   readonly entry: string
 *   readonly facades: Readonly<Record<string, string>>
 *   readonly built: number
 *   readonly inputs: ReadonlyArray<string>
 * }} Manifest
 */

/** Turns Node's compile cache on, under `.build/`; nothing when it cannot be (a read-only tree, an old Node). */
export const enableCompileCache = () => {
  try {
    module.enableCompileCache?.(path.join(repoRoot, ".build", "compile-cache"))
  } catch {
    // a cache is an optimisation
  }
}

/** The manifest of the build of the repository at `root` when that build is fresh, else `undefined`. */
export const fresh = (root = repoRoot) => {
  /** @type {Manifest} */
  let manifest
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(buildDir(root), "manifest.json"), "utf8"))
  } catch {
    return undefined
  }
  // The inputs are relative paths of the repository (`/`-separated): joined by hand, `path.join` would cost more
  // than the `stat`s themselves on a start.
  const prefix = root.endsWith("/") ? root : `${root}/`
  const lock = fs.statSync(`${prefix}package-lock.json`, { throwIfNoEntry: false })
  if (lock === undefined || lock.mtimeMs > manifest.built) return undefined
  for (const input of manifest.inputs) {
    const stat = fs.statSync(prefix + input, { throwIfNoEntry: false })
    if (stat === undefined || stat.mtimeMs > manifest.built) return undefined
  }
  return manifest
}

/**
 * Whether the start-up snapshot made by the build of `built` in the repository at `builtRoot` may run the CLI
 * when started from the repository at `root` with `env`: the same rule as the bundle's (`fresh`), for that very
 * build, in the repository it was made in (its paths are absolute), and neither the sources nor a user's scenario
 * modules to run (they need `bin.mjs`).
 * @param {{ readonly root: string, readonly builtRoot: string, readonly built: number,
 *   readonly env: Record<string, string | undefined> }} options
 */
export const snapshotUsable = ({ root, builtRoot, built, env }) =>
  root === builtRoot && fresh(root)?.built === built && env.TEZT_CLOUD_SOURCES !== "1" &&
  (env.TEZT_CLOUD_SCENARIOS ?? "") === ""

const importPattern =
  /(?:^|[\s;])(?:import|export)\s[^"'`;]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)/gm

/**
 * Whether `specifier` names a module of `effect` or of the workspace, which must come from one place only.
 * @param {string} specifier
 */
const shared = (specifier) =>
  specifier === "effect" || specifier.startsWith("effect/") || specifier.startsWith("@tezt-cloud/") ||
  specifier.startsWith("@effect/")

/**
 * Whether the modules of `spec` (colon-separated paths) and the relative modules they import import the shared
 * packages by the facades' names only.
 * @param {string} spec
 * @param {Readonly<Record<string, string>>} facades
 */
export const onlyFacades = (spec, facades) => {
  const seen = new Set()
  const pending = spec.split(":").filter((f) => f !== "").map((f) => path.resolve(f))
  while (pending.length > 0) {
    const file = /** @type {string} */ (pending.pop())
    if (seen.has(file)) continue
    seen.add(file)
    let text
    try {
      text = fs.readFileSync(file, "utf8")
    } catch {
      // the CLI says what is wrong with it
      return true
    }
    for (const match of text.matchAll(importPattern)) {
      const specifier = match[1] ?? match[2] ?? ""
      if (specifier.startsWith(".")) pending.push(path.resolve(path.dirname(file), specifier))
      else if (shared(specifier) && facades[specifier] === undefined) return false
    }
  }
  return true
}

/** Resolves the facades' names to the bundle's modules for every module that is not the bundle's. */
const redirect = (/** @type {Readonly<Record<string, string>>} */ facades) => {
  const dir = buildDir()
  const buildUrl = url.pathToFileURL(dir).href + "/"
  const urls = new Map(
    Object.entries(facades).map(([name, file]) => [name, url.pathToFileURL(path.join(dir, file)).href])
  )
  module.registerHooks({
    resolve: (specifier, context, nextResolve) => {
      const target = urls.get(specifier)
      return target !== undefined && !(context.parentURL ?? "").startsWith(buildUrl)
        ? { url: target, shortCircuit: true }
        : nextResolve(specifier, context)
    }
  })
}

/**
 * The URL of the CLI's main module to import: the bundle's when it is fresh and may run here, else the sources'.
 * @param {Record<string, string | undefined>} env
 */
export const main = (env) => {
  const sources = new URL("./Main.ts", import.meta.url).href
  if (env.TEZT_CLOUD_SOURCES === "1" || typeof module.registerHooks !== "function") return sources
  const manifest = fresh()
  if (manifest === undefined) return sources
  const scenarios = env.TEZT_CLOUD_SCENARIOS ?? ""
  if (scenarios !== "") {
    if (!onlyFacades(scenarios, manifest.facades)) return sources
    redirect(manifest.facades)
  }
  return url.pathToFileURL(path.join(buildDir(), manifest.entry)).href
}

/**
 * Runs the full CLI in this process (its main module reads `process.argv`): the compile cache first, then the
 * bundle or the sources (`main`).
 * @param {Record<string, string | undefined>} env
 */
export const runCli = async (env) => {
  enableCompileCache()
  await import(main(env))
}
