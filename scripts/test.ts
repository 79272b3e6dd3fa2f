/**
 * `npm test`: the whole suite in two lanes side by side, each a `vitest run` of its own whose files run one after
 * the other, as vitest does on this machine's two cores. The first lane is the fault suite (test/faults: hundreds
 * of real runs, CPU-bound), then the ssh transport's, the proxy's and the CLI's suites; the second, every other
 * file. The first lane's files share nothing with the others that two runs at once could trip on: the fault
 * suite's runs take ports 10000-19999 only, the ssh suite's agents 42000 and up, the proxy's containers their own
 * networks and forwarded ports the kernel picks, the CLI suite's agents listen on none, all of them in
 * namespaces of their own. The files of the second lane share fixed
 * port ranges with each other. The first lane's lines are prefixed with `[lane 1]`.
 *
 * With file filters (`npm test -- packages/ssh`), one `vitest run` with the arguments as they are. A JSON report
 * (`--outputFile.json=F`) is written by each lane beside F and merged into F.
 */
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as readline from "node:readline"

const args = process.argv.slice(2)
/** The first lane: about as long as the second on this machine (the fault suite alone is half of it). */
const first = ["test/faults/", "packages/ssh/test/SshHost.test.ts", "test/Proxy.test.ts", "test/Cli.test.ts"]

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
  // A filter matches every path that contains it: `test/Proxy.test.ts` is also in packages/proxy/test/.
  vitest(
    [...laneArgs("lane1"), ...first, "--exclude", "packages/proxy/**"],
    (text) => process.stdout.write(`[lane 1] ${text}\n`)
  ),
  vitest([...laneArgs("lane2"), ...first.flatMap((f) => ["--exclude", f.endsWith("/") ? `${f}**` : f])])
])

if (json !== undefined) {
  // One report, as one vitest run writes it: counts summed, results joined.
  const lanes = ["lane1", "lane2"].map((lane) => JSON.parse(fs.readFileSync(`${json}.${lane}`, "utf8")))
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
