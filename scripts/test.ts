/**
 * `npm test`: the whole suite in two lanes side by side, the fault suite (test/faults: hundreds of real runs, CPU-bound)
 * and every other file, each a `vitest run` of its own. The other files run one after the other, as vitest does
 * on this machine's two cores: they share fixed port ranges and engines that are safe to share with the fault
 * suite's (its runs take ports 10000-19999 only, and their own namespaces), not with each other. The fault lane's
 * lines are prefixed with `[faults]`.
 *
 * With file filters (`npm test -- packages/ssh`), one `vitest run` with the arguments as they are. A JSON report
 * (`--outputFile.json=F`) is written by each lane beside F and merged into F.
 */
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as readline from "node:readline"

const args = process.argv.slice(2)
const faults = "test/faults/"

/** A `vitest run` with `extra` arguments; its lines go through `line`, or straight out when undefined. */
const vitest = (extra: ReadonlyArray<string>, line?: (text: string) => void) =>
  new Promise<number>((resolve) => {
    const proc = child.spawn("vitest", ["run", ...extra], {
      stdio: line === undefined ? "inherit" : ["ignore", "pipe", "pipe"]
    })
    if (line !== undefined) {
      for (const stream of [proc.stdout!, proc.stderr!]) readline.createInterface({ input: stream }).on("line", line)
    }
    proc.once("exit", (code, signal) => resolve(code ?? (signal === null ? 1 : 128)))
  })

// Positional arguments are file filters: the user asked for those files, in one run.
const filtered = args.some((a) => !a.startsWith("-"))
if (filtered) process.exit(await vitest(args))

const json = args.find((a) => a.startsWith("--outputFile.json="))?.slice("--outputFile.json=".length)
const laneArgs = (lane: string) =>
  args.map((a) => json !== undefined && a.startsWith("--outputFile.json=") ? `--outputFile.json=${json}.${lane}` : a)

const [faultCode, restCode] = await Promise.all([
  vitest([...laneArgs("faults"), faults], (text) => process.stdout.write(`[faults] ${text}\n`)),
  vitest([...laneArgs("rest"), "--exclude", `${faults}**`])
])

if (json !== undefined) {
  // One report, as one vitest run writes it: counts summed, results joined.
  const lanes = ["faults", "rest"].map((lane) => JSON.parse(fs.readFileSync(`${json}.${lane}`, "utf8")))
  const merged: Record<string, unknown> = { ...lanes[1] }
  for (const key of Object.keys(merged)) {
    if (typeof merged[key] === "number" && key.startsWith("num")) {
      merged[key] = lanes.reduce((sum, lane) => sum + (lane[key] as number), 0)
    }
  }
  merged.testResults = lanes.flatMap((lane) => lane.testResults)
  merged.success = lanes.every((lane) => lane.success)
  merged.startTime = Math.min(...lanes.map((lane) => lane.startTime as number))
  fs.writeFileSync(json, JSON.stringify(merged))
}
process.exit(faultCode !== 0 ? faultCode : restCode)
