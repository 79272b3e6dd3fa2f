/**
 * Log rotation of the daemons' log files on agents (`--log-rotation N`), a Chronos task per agent: daily at 00:00
 * UTC (plus up to five random minutes), each daemon's log is copied to `<log>.1` and truncated in place, the older
 * copies shifted (`<log>.1` → `<log>.2` …) and only the newest N kept. A daemon keeps writing to the same open
 * file (its output is appended), so nothing restarts.
 *
 * **Gotchas**
 *
 * Lines written between the copy and the truncation are lost, as with logrotate's `copytruncate`.
 */
import { Effect } from "effect"
import type { Agent } from "./Agent.ts"
import type * as Chronos from "./Chronos.ts"
import * as CloudError from "./CloudError.ts"

/** When the rotation runs: daily at 00:00 UTC. */
export const spec = "0 0 * * *"

/** How much later than `spec` an agent's rotation may start. */
export const randomDelay = "5 minutes"

/** `sh -c script sh KEEP FILE…`: rotates each file, keeping KEEP copies. */
export const script = `keep=$1; shift
for f do
  [ -f "$f" ] || continue
  rm -f "$f.$keep"
  i=$keep
  while [ "$i" -gt 1 ]; do j=$((i - 1)); [ -f "$f.$j" ] && mv -f "$f.$j" "$f.$i"; i=$j; done
  cp -p "$f" "$f.1" && : >"$f" || exit 1
done`

/** Rotates the logs of the daemons running on `agent` now, keeping `keep` copies of each. */
export const rotate = Effect.fn("LogRotation.rotate")(function*(agent: Agent, keep: number) {
  const files = yield* agent.daemonLogs
  if (files.length === 0 || keep <= 0) return
  const result = yield* agent.runner.exec("/bin/sh", ["-c", script, "sh", String(keep), ...files])
  if (result.exitCode !== 0) {
    return yield* CloudError.command(
      agent.name,
      "log rotation",
      `exited with code ${result.exitCode}: ${result.stderr.trim().split("\n").at(-1) ?? ""}`
    )
  }
})

/** The rotation of `agent`'s daemons' logs as a Chronos task. */
export const task = (agent: Agent, keep: number): Chronos.Task => ({
  name: `log rotation on ${agent.name}`,
  spec,
  randomDelay,
  run: rotate(agent, keep)
})
