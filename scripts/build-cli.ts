/**
 * Builds the `tezt-cloud` CLI as bundled, tree-shaken JavaScript (esbuild) into `.build/cli/`, from the TypeScript
 * sources, which stay the source of truth: `scripts/bootstrap.sh` runs this when a source is newer than the build,
 * and `packages/cli/src/bin.mjs` loads the bundle only while it is fresh (see `manifest.json` below).
 *
 * **Details**
 *
 * - One entry (`Main.ts`) split at every dynamic import: a command loads the chunks it needs, nothing else.
 * - Every output file is named by its content hash and written atomically (a temporary file renamed), then the
 *   manifest, last: a process of an older build keeps loading its own chunks, and two builds at once write the
 *   same bytes. Chunks no build of the last day refers to are removed.
 * - `import.meta.url` / `import.meta.dirname` of a workspace module are rewritten to the module's source location
 *   (relative to the bundle): the files read next to a module (the ssh executor's Perl, the website's assets,
 *   Grafana's dashboards…) are read from the repository, as when the sources run.
 * - Packages with native parts or large CommonJS trees (ssh2, dockerode, the Google Cloud clients, the
 *   OpenTelemetry SDK) stay external: Node loads them from `node_modules` when a command needs them.
 * - `manifest.json` names the entry, the build's start time and every workspace source it was built from:
 *   `bin.mjs` falls back to the sources when one of them (or `package-lock.json`) changed since.
 * - `TEZT_CLOUD_BUILD_META=FILE` writes esbuild's metafile there: which module went into which chunk, and its size.
 */
import * as esbuild from "esbuild"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as url from "node:url"

const root = path.resolve(import.meta.dirname, "..")
const outdir = path.join(root, ".build", "cli")

/** Packages Node loads from `node_modules` at run time (native addons, big CommonJS trees, lazily needed). */
const external = [
  "ssh2",
  "dockerode",
  "docker-modem",
  "@google-cloud/*",
  "google-auth-library",
  "google-gax",
  "@grpc/*",
  "protobufjs",
  "esbuild",
  // The OpenTelemetry SDK (CommonJS, loaded only with --open-telemetry); @effect/opentelemetry stays in the
  // bundle, on the bundle's own `effect` (one metric registry).
  "@opentelemetry/*"
]

/** A workspace source: a file of the repository outside `node_modules`. */
const isWorkspace = (file: string) => !path.relative(root, file).split(path.sep).includes("node_modules")

/** What `export * as Name from "./Module.js"` lines of a barrel module name: each namespace and its module. */
const namespacesOf = (barrel: string): ReadonlyMap<string, string> => {
  const text = fs.readFileSync(barrel, "utf8")
  const found = new Map<string, string>()
  for (const [, name, from] of text.matchAll(/export\s*\*\s*as\s+(\w+)\s+from\s*"([^"]+)"/g)) {
    found.set(name!, path.resolve(path.dirname(barrel), from!))
  }
  return found
}

/**
 * `import { Effect, Schema } from "effect"` as `import * as Effect from ".../Effect.js"`, and so on: esbuild keeps
 * every export of a namespace that is imported by name from a barrel (`export * as Schema from …`), but only the
 * used ones of a module imported as a namespace. Names that are not namespaces stay imported from the barrel.
 */
const directNamespaces = async (
  build: esbuild.PluginBuild,
  text: string,
  resolveDir: string,
  barrels: Map<string, ReadonlyMap<string, string>>
) => {
  let out = ""
  let last = 0
  for (const match of text.matchAll(/^import\s*\{([^}]*)\}\s*from\s*"([^"./][^"]*)"/gm)) {
    const [whole, names, from] = match as unknown as [string, string, string]
    const resolved = await build.resolve(from, { kind: "import-statement", resolveDir })
    if (resolved.errors.length > 0 || resolved.external || resolved.namespace !== "file") continue
    let namespaces = barrels.get(resolved.path)
    if (namespaces === undefined) {
      namespaces = namespacesOf(resolved.path)
      barrels.set(resolved.path, namespaces)
    }
    const direct: Array<string> = []
    const rest: Array<string> = []
    for (const raw of names.split(",").map((n) => n.trim()).filter((n) => n !== "")) {
      const [name, alias = name] = raw.split(/\s+as\s+/).map((n) => n.trim()) as [string, string?]
      const module = namespaces.get(name)
      if (name.startsWith("type ")) continue
      if (module === undefined) rest.push(raw)
      else direct.push(`import * as ${alias} from ${JSON.stringify(module)};`)
    }
    const kept = rest.length === 0 ? "" : `import { ${rest.join(", ")} } from ${JSON.stringify(from)};`
    out += text.slice(last, match.index) + direct.join("") + kept
    last = match.index + whole.length
  }
  return out + text.slice(last)
}

/**
 * The workspace's modules as the bundle needs them: their imports of barrels made direct (`directNamespaces`),
 * and `import.meta.url` / `import.meta.dirname` rewritten to their source location: relative to the bundle's
 * module, or, in the snapshot's script (`absolute`), as it is when the snapshot is built.
 */
const workspaceSources = (absolute: boolean): esbuild.Plugin => ({
  name: "workspace-sources",
  setup(build) {
    const barrels = new Map<string, ReadonlyMap<string, string>>()
    build.onLoad({ filter: /\.(ts|mts|mjs)$/ }, async (args) => {
      if (!isWorkspace(args.path)) return undefined
      const resolveDir = path.dirname(args.path)
      let contents = await directNamespaces(build, fs.readFileSync(args.path, "utf8"), resolveDir, barrels)
      if (contents.includes("import.meta") && absolute) {
        contents = contents.replaceAll("import.meta.url", JSON.stringify(url.pathToFileURL(args.path).href))
          .replaceAll("import.meta.dirname", JSON.stringify(path.dirname(args.path)))
      } else if (contents.includes("import.meta")) {
        const relative = JSON.stringify(path.relative(outdir, args.path).split(path.sep).join("/"))
        contents = "import { fileURLToPath as __tcFileUrlToPath } from \"node:url\";" +
          `const __tcMetaUrl = new URL(${relative}, import.meta.url).href;` +
          "const __tcMetaDir = __tcFileUrlToPath(new URL(\".\", __tcMetaUrl)).replace(/\\/$/, \"\");" +
          contents.replaceAll("import.meta.url", "__tcMetaUrl").replaceAll("import.meta.dirname", "__tcMetaDir")
      }
      return { contents, loader: args.path.endsWith(".mjs") ? "js" : "ts", resolveDir }
    })
  }
})

/** The module of the Compute clients' definitions, which the build replaces by its result. */
const computeDefinitions = path.join(root, "packages/gcp/src/ComputeDefinitions.ts")

/**
 * `ComputeDefinitions.ts` as its result: the definitions it prunes from `@google-cloud/compute`'s 12 MB file when
 * run, made once here, as a JSON text (parsed on load: V8 parses JSON faster than the same object literal).
 */
const builtDefinitions: esbuild.Plugin = {
  name: "compute-definitions",
  setup(build) {
    build.onLoad({ filter: /ComputeDefinitions\.ts$/ }, async (args) => {
      if (args.path !== computeDefinitions) return undefined
      const { definitions } = await import(url.pathToFileURL(computeDefinitions).href) as { definitions: unknown }
      const text = JSON.stringify(JSON.stringify(definitions))
      return { contents: `export const definitions = JSON.parse(${text})`, loader: "js" }
    })
  }
}

const mainEntry = "packages/cli/src/Main.ts"

/** The proxy's server (run on a proxy from the bundle that ships there): an entry of its own, sharing chunks. */
const serverEntry = "packages/proxy/src/serve.ts"

/**
 * The modules a user's scenario module (`$TEZT_CLOUD_SCENARIOS`) imports by these names get them from the bundle
 * (`CliBuild.mjs` redirects them), so that the CLI and the scenarios share one `effect` and one copy of each
 * package: the barrels of the workspace's packages and Effect's.
 */
const facades: Record<string, string> = {
  effect: "node_modules/effect/dist/index.js",
  ...Object.fromEntries(
    ["cli", "http", "process"].map((sub) => [`effect/${sub}`, `node_modules/effect/dist/${sub}/index.js`])
  ),
  ...Object.fromEntries(
    [...fs.globSync("packages/*/src/index.ts", { cwd: root }), "scenarios/src/index.ts"].map((index) => {
      const { name } = JSON.parse(fs.readFileSync(path.join(root, index, "..", "..", "package.json"), "utf8")) as {
        readonly name: string
      }
      return [name, index]
    })
  )
}
const facadeName = (specifier: string) => `facade-${specifier.replaceAll(/[^a-z0-9]+/gi, "-")}`

/** What the bundle and the snapshot's script are both built with: one bundle of the sources for Node 22, minified. */
const common = {
  absWorkingDir: root,
  write: false,
  bundle: true,
  platform: "node",
  target: "node22",
  treeShaking: true,
  minifySyntax: true,
  minifyWhitespace: true,
  keepNames: true,
  legalComments: "none",
  external
} satisfies esbuild.BuildOptions

const started = Date.now()
const result = await esbuild.build({
  ...common,
  entryPoints: {
    main: path.join(root, mainEntry),
    serve: path.join(root, serverEntry),
    ...Object.fromEntries(Object.entries(facades).map(([specifier, file]) => [facadeName(specifier), file]))
  },
  outdir,
  splitting: true,
  format: "esm",
  entryNames: "[name]-[hash]",
  chunkNames: "[name]-[hash]",
  outExtension: { ".js": ".mjs" },
  // CommonJS modules of the bundle call `require`: an ES module has none of its own.
  banner: { js: "import{createRequire as __tcRequire}from\"node:module\";const require=__tcRequire(import.meta.url);" },
  metafile: true,
  logLevel: "warning",
  plugins: [builtDefinitions, workspaceSources(false)]
})

fs.mkdirSync(outdir, { recursive: true })
if (process.env.TEZT_CLOUD_BUILD_META !== undefined) {
  fs.writeFileSync(process.env.TEZT_CLOUD_BUILD_META, JSON.stringify(result.metafile))
}
const written = new Set<string>()
for (const file of result.outputFiles) {
  const tmp = `${file.path}.${process.pid}.tmp`
  fs.writeFileSync(tmp, file.contents)
  fs.renameSync(tmp, file.path)
  written.add(path.basename(file.path))
}
const outputOf = (input: string) =>
  path.basename(Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint === input)![0])
// The start-up snapshot: one CommonJS script (what Node's snapshot builder runs) of `Snapshot.ts`, every dynamic
// import inlined (loaded, not run), made into `startup.blob` by the project's Node. Without it the bundle runs.
const snapshotEntry = "packages/cli/src/Snapshot.ts"
const script = await esbuild.build({
  ...common,
  entryPoints: [path.join(root, snapshotEntry)],
  format: "cjs",
  // An `Intl.Segmenter` holds an ICU object, which a snapshot cannot: effect/cli makes one when it is loaded, so
  // the script's are made on first use (`__tcSegmenter` below), and only for text that needs one.
  define: { __TEZT_CLOUD_BUILT__: String(started), "Intl.Segmenter": "__tcSegmenter" },
  // A script started from a snapshot has no dynamic `import()` (Node gives it no callback for one: "A dynamic import
  // callback was not specified"): the lazy imports of external packages (the OpenTelemetry exporters of
  // `--open-telemetry`, Google's auth library) become `require`s, which load ES modules too.
  supported: { "dynamic-import": false },
  // The snapshot builder's `require` knows Node's built-in modules only: packages left external are required
  // from the repository's `node_modules` when a command needs them.
  // `Effect.fn` keeps an error of where each function is defined, for its spans; one whose stack was captured
  // cannot be in a snapshot (V8's serializer fails): the snapshot's have none (`Snapshot.ts` sets the limit back).
  banner: {
    js: "globalThis.__tcStackTraceLimit=Error.stackTraceLimit;Error.stackTraceLimit=0;" +
      "var require=(id)=>process.getBuiltinModule(id)??" +
      `process.getBuiltinModule("node:module").createRequire(${JSON.stringify(path.join(root, "package.json"))})(id);` +
      "class __tcSegmenter{#a;#s;constructor(...a){this.#a=a}get #r(){return this.#s??=new Intl.Segmenter(...this.#a)}" +
      // Text of characters that never join another (printable Latin, punctuation such as "…", arrows, boxes) is one
      // grapheme per character: no ICU for it (~20 ms of loading for `--help`).
      "segment(t){return /^[\\x20-\\x7e\\xa0-\\u02ff\\u2010-\\u2027\\u2030-\\u205e\\u2190-\\u21ff\\u2500-\\u259f]*$/" +
      ".test(t)?Array.from(t,(segment,index)=>({segment,index,input:t}))" +
      ":this.#r.segment(t)}resolvedOptions(){return this.#r.resolvedOptions()}}"
  },
  metafile: true,
  logLevel: "warning",
  plugins: [builtDefinitions, workspaceSources(true)]
})
const scriptFile = path.join(outdir, `snapshot.${process.pid}.cjs`)
const blobTmp = path.join(outdir, `startup.blob.${process.pid}.tmp`)
fs.writeFileSync(scriptFile, script.outputFiles[0]!.contents)
const snapshot = child.spawnSync(process.execPath, ["--snapshot-blob", blobTmp, "--build-snapshot", scriptFile], {
  cwd: root,
  env: { ...process.env, TEZT_CLOUD_SCENARIOS: "", TEZT_CLOUD_SOURCES: "" },
  stdio: ["ignore", "inherit", "inherit"]
})
fs.rmSync(scriptFile, { force: true })
if (snapshot.status === 0) fs.renameSync(blobTmp, path.join(outdir, "startup.blob"))
else {
  fs.rmSync(blobTmp, { force: true })
  fs.rmSync(path.join(outdir, "startup.blob"), { force: true })
  process.stderr.write(
    "tezt-cloud: the CLI's start-up snapshot could not be built (see above): the bundle runs instead\n"
  )
}

/** The workspace's source files an esbuild build was made from. */
const workspaceInputs = (metafile: esbuild.Metafile) =>
  Object.keys(metafile.inputs)
    // Files only, not modules of a plugin's namespace.
    .filter((f) => !/^[a-z-]+:/.test(f))
    .map((f) => path.resolve(root, f))
    .filter(isWorkspace)
    .map((f) => path.relative(root, f))
const inputs = [...new Set([...workspaceInputs(result.metafile), ...workspaceInputs(script.metafile)])].toSorted()

const manifest = {
  entry: outputOf(mainEntry),
  server: outputOf(serverEntry),
  facades: Object.fromEntries(Object.entries(facades).map(([specifier, file]) => [specifier, outputOf(file)])),
  built: started,
  inputs: [...inputs, "scripts/build-cli.ts"]
}
const tmp = path.join(outdir, `manifest.json.${process.pid}.tmp`)
fs.writeFileSync(tmp, JSON.stringify(manifest))
// The manifest is as old as the build's start: a source saved during the build is newer.
fs.utimesSync(tmp, started / 1000, started / 1000)
fs.renameSync(tmp, path.join(outdir, "manifest.json"))

// Node's compile cache keeps an entry per file it compiled, never removed: the old build's chunks' go with it.
fs.rmSync(path.join(root, ".build", "compile-cache"), { recursive: true, force: true })

// What no build of the last day wrote goes (a run started then may still load its chunks).
const day = 24 * 3600 * 1000
for (const name of fs.readdirSync(outdir)) {
  if (name === "manifest.json" || name === "startup.blob" || written.has(name)) continue
  const full = path.join(outdir, name)
  const stat = fs.statSync(full)
  if (Date.now() - stat.mtimeMs > day) fs.rmSync(full, { force: true })
}
