/**
 * The live run's CPU per `agents exec` command: a child process plays a live run on N real sshd hosts (`LiveRun`,
 * as for `ssh-fanout.ts`'s warm row) while a shell started once runs `./tezt-cloud agents exec -- CMD` (the thin
 * client) many times in a row. The CPU the live run spends meanwhile, divided by the commands, is its share of a
 * warm command; the client processes are outside it, and so is starting them (the shell does).
 *
 * Prints, per block of fan-outs, the live run's CPU per command and the wall time per fan-out, then the median.
 * `BENCH_HOSTS` (default 64), `BENCH_FANOUTS` per block (default 20), `BENCH_BLOCKS` (default 5), `BENCH_COMMAND`
 * (default `true`), `BENCH_EVENTS=file` to write the run's events to `events.jsonl` as a run does, and as
 * `ssh-fanout.ts`'s live run does (default: none; the two measured the same, 0.30–0.31 ms per command, in turns).
 * Profile the run side with `sh scripts/with-node.sh node --cpu-prof bench/exec-cpu.ts` (the live run's process
 * writes its own profile).
 */
import { Effect } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SshKeys } from "../packages/ssh/src/index.ts"
import * as SshHosts from "../test/fixtures/SshHosts.ts"
import * as LiveRun from "./LiveRun.ts"

const hostCount = Number(process.env.BENCH_HOSTS ?? 64)
const fanouts = Number(process.env.BENCH_FANOUTS ?? 20)
const blocks = Number(process.env.BENCH_BLOCKS ?? 5)
const command = (process.env.BENCH_COMMAND ?? "true").split(" ")
const root = path.resolve(import.meta.dirname, "..")
const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-exec-cpu-"))
const stateDir = path.join(work, "state")
const namespace = "bench"

const median = (xs: ReadonlyArray<number>) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** Runs the client `times` times in a row from one shell; resolves once the shell exits (0, or a failure). */
const clientLoop = (times: number) =>
  new Promise<void>((resolve, reject) => {
    const cli = [path.join(root, "tezt-cloud"), "agents", "exec", "--tezt-cloud", namespace, "--", ...command]
      .map((w) => `'${w}'`).join(" ")
    const proc = child.spawn("sh", [
      "-c",
      `i=0; while [ $i -lt ${times} ]; do ${cli} >/dev/null || exit 1; i=$((i+1)); done`
    ], {
      env: { ...process.env, TEZT_CLOUD_STATE_DIR: stateDir, HOME: path.join(work, "home"), TEZT_CLOUD_SCENARIOS: "" },
      stdio: ["ignore", "ignore", "inherit"]
    })
    proc.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`the client loop exited ${code}`))))
  })

const main = async () => {
  const key = await Effect.runPromise(SshKeys.ensure(namespace, undefined, path.join(work, "home")))
  process.stderr.write(`starting ${hostCount} sshd hosts…\n`)
  const hosts = await Promise.all(
    Array.from({ length: hostCount }, () => SshHosts.start({ authorizedKeys: [key.publicKey] }))
  )
  try {
    const live = await LiveRun.start({
      stateDir,
      namespace,
      hosts,
      user: SshHosts.user,
      keyFile: key.path,
      eventsDir: process.env.BENCH_EVENTS === "file" ? work : undefined
    })
    const perBlock: Array<{ cpu: number; system: number; wall: number }> = []
    try {
      // Warm-up: the executors start, the JIT settles (over the first ~15 fan-outs).
      await clientLoop(20)
      for (let b = 0; b < blocks; b++) {
        const before = await live.cpu()
        const started = performance.now()
        await clientLoop(fanouts)
        const after = await live.cpu()
        const commands = fanouts * hostCount
        const figures = {
          cpu: (after.user + after.system - before.user - before.system) / commands,
          system: (after.system - before.system) / commands,
          wall: (performance.now() - started) / fanouts
        }
        process.stderr.write(
          `block ${b + 1}: live run ${figures.cpu.toFixed(3)} ms CPU per command (system ${
            figures.system.toFixed(3)
          }), ${figures.wall.toFixed(0)} ms per fan-out (load ${os.loadavg()[0]!.toFixed(1)})\n`
        )
        perBlock.push(figures)
      }
    } finally {
      await live.close()
    }
    console.log(
      `${hostCount} hosts, ${blocks} × ${fanouts} fan-outs of ${command.join(" ")}: live run ${
        median(perBlock.map((f) => f.cpu)).toFixed(3)
      } ms CPU per command (median of blocks; system ${median(perBlock.map((f) => f.system)).toFixed(3)}), ${
        median(perBlock.map((f) => f.wall)).toFixed(0)
      } ms per fan-out`
    )
  } finally {
    await Promise.all(hosts.map((h) => h.stop()))
    fs.rmSync(work, { recursive: true, force: true })
  }
}

await main()
