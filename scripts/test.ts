/**
 * `npm test`: the whole suite in lanes side by side (two by default, `TEZT_CLOUD_TEST_LANES` to change), each a
 * `vitest run` of its own whose files run one after the other, as vitest does on this machine's two cores. Files
 * go to lanes longest first, each to the lane that ends earliest, by the durations in `test-durations.json` (a
 * file not listed counts as a short one), so the lanes end about together. Files of different lanes run at the
 * same time: they take their ports from `test/fixtures/Ports.ts`, their namespaces, network namespaces and
 * loopback addresses from their process ids, and the fault suite's files (one per backend) a block of 2000 ports
 * each in 10000-19999, which nothing else uses.
 * Every lane but the last prefixes its lines with `[lane N]`.
 *
 * A full run ends with the leftover check (`leftovers.ts`): what the tests created in the temporary and state
 * directories, the test Docker engine, network namespaces and the process table, and left there, is listed, and
 * with `CI` set fails the run.
 *
 * With file filters (`npm test -- packages/ssh`), one `vitest run` with the arguments as they are. A JSON report
 * (`--outputFile.json=F`) is written by each lane beside F and merged into F.
 */
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as readline from "node:readline"
import * as Ports from "../test/fixtures/Ports.ts"
import config, { laneFiles } from "../vitest.config.ts"
import * as Leftovers from "./leftovers.ts"

const args = process.argv.slice(2)
const root = path.resolve(import.meta.dirname, "..")

/**
 * A `vitest run` with `extra` arguments, of exactly the test files `only` when given; its lines go through `line`,
 * or straight out when undefined.
 */
const vitest = (extra: ReadonlyArray<string>, line?: (text: string) => void, only?: ReadonlyArray<string>) =>
  new Promise<number>((resolve) => {
    const proc = child.spawn("vitest", ["run", ...extra], {
      stdio: line === undefined ? "inherit" : ["ignore", "pipe", "pipe"],
      env: only === undefined ? process.env : { ...process.env, [laneFiles]: JSON.stringify(only) }
    })
    if (line !== undefined) {
      for (const stream of [proc.stdout!, proc.stderr!]) readline.createInterface({ input: stream }).on("line", line)
    }
    proc.once("exit", (code, signal) => resolve(code ?? (signal === null ? 1 : 128)))
  })

// Positional arguments are file filters: the user asked for those files, in one run.
const filtered = args.some((a) => !a.startsWith("-"))
if (filtered) process.exit(await vitest(args))

/** Seconds each file took in a CI run (rounded); the balance only needs them roughly right. */
const durations: Record<string, number> = JSON.parse(
  fs.readFileSync(path.join(import.meta.dirname, "test-durations.json"), "utf8")
)
const files = fs.globSync(config.test!.include!, { cwd: root, exclude: (f) => f.includes("node_modules") })
  .toSorted((a, b) => (durations[b] ?? 5) - (durations[a] ?? 5) || a.localeCompare(b))
const count = Math.max(1, Math.min(files.length, Number(process.env.TEZT_CLOUD_TEST_LANES ?? 2)))
const lanes = Array.from({ length: count }, () => ({ files: new Array<string>(), seconds: 0 }))
for (const file of files) {
  const lane = lanes.reduce((best, l) => (l.seconds < best.seconds ? l : best))
  lane.files.push(file)
  lane.seconds += durations[file] ?? 5
}

const json = args.find((a) => a.startsWith("--outputFile.json="))?.slice("--outputFile.json=".length)
const laneArgs = (k: number) =>
  args.map((a) => json !== undefined && a.startsWith("--outputFile.json=") ? `--outputFile.json=${json}.lane${k}` : a)

// The allocator's lock directory outlives the run: made before the snapshot, it is not a leftover.
fs.mkdirSync(Ports.dir, { recursive: true })
const before = Leftovers.snapshot()

// Each lane's files as the test configuration's `include` (`vitest.config.ts`), not as filters: a filter matches
// every path that contains it, even given absolute (`test/Proxy.test.ts` is in packages/proxy/ too), and such a
// file then ran in two lanes at once.
const codes = await Promise.all(lanes.map((lane, k) =>
  vitest(
    laneArgs(k + 1),
    k === count - 1 ? undefined : (text) => process.stdout.write(`[lane ${k + 1}] ${text}\n`),
    lane.files
  )
))

if (json !== undefined) {
  // One report, as one vitest run writes it: counts summed, results joined.
  const reports = lanes.map((_, k) => JSON.parse(fs.readFileSync(`${json}.lane${k + 1}`, "utf8")))
  const merged: Record<string, unknown> = { ...reports[0] }
  for (const key of Object.keys(merged)) {
    if (typeof merged[key] === "number" && key.startsWith("num")) {
      merged[key] = reports.reduce((sum, report) => sum + (report[key] as number), 0)
    }
  }
  merged.testResults = reports.flatMap((report) => report.testResults)
  merged.success = reports.every((report) => report.success)
  merged.startTime = Math.min(...reports.map((report) => report.startTime as number))
  fs.writeFileSync(json, JSON.stringify(merged))
}
// The reports (the lanes' and the merged one) are ours, not leftovers.
const ours = (place: string, name: string) =>
  json !== undefined && (path.join(place, name) === json || path.join(place, name).startsWith(`${json}.lane`))
const left = Object.fromEntries(
  Object.entries(await Leftovers.leftovers(before, Leftovers.snapshot))
    .map(([place, names]) => [place, names.filter((name) => !ours(place, name))] as const)
    .filter(([, names]) => names.length > 0)
)
if (Object.keys(left).length > 0) {
  // In CI nothing else runs on the machine: what appeared was left by a test. Elsewhere it may be anyone's.
  process.stdout.write(
    `\n${process.env.CI ? "FAIL" : "warning"}: the tests left these behind:\n${Leftovers.describe(left)}\n`
  )
  if (process.env.CI) codes.push(1)
}
process.exit(codes.find((code) => code !== 0) ?? 0)
