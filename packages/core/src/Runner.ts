/**
 * The contract every backend implements to run things on one agent: commands with streamed output, exit code
 * and pid; daemons scoped to the run; file copies with Tezt cloud's md5 rule (CopyPolicy). Every backend passes the
 * same contract suite (`test/contract/RunnerContract.ts`).
 *
 * **Details**
 *
 * Arguments are an argv, never a shell string: what a scenario passes is what the program receives. Interrupting
 * an `exec` kills the command's whole process tree on the agent.
 */
import type { Effect, Scope } from "effect"
import type * as CloudError from "./CloudError.ts"
import type { Daemon } from "./Daemon.ts"

export interface OutputLine {
  readonly stream: "stdout" | "stderr"
  readonly line: string
}

export interface ExecOptions {
  /** Extra environment variables for the command. */
  readonly env?: Record<string, string> | undefined
  /** Working directory on the agent; relative paths are relative to the agent's home. */
  readonly cwd?: string | undefined
  /** Called for each line of output as it arrives. */
  readonly onLine?: ((line: OutputLine) => Effect.Effect<void>) | undefined
  /**
   * Neither it nor its output lines are run events (not shown, not in `events.jsonl` nor `commands.log`): a
   * transfer (`Fetch`), the run's own machinery. Its lines still reach `onLine`.
   */
  readonly quiet?: boolean | undefined
}

export interface ExecResult {
  readonly exitCode: number
  readonly stdout: string
  readonly stderr: string
  /** The pid the command had on the agent. */
  readonly pid: number
}

export interface SpawnOptions {
  readonly env?: Record<string, string> | undefined
  readonly cwd?: string | undefined
  /** Log file on the agent; defaults to `<home>/logs/<name>.log`. */
  readonly logFile?: string | undefined
}

export interface CopyOptions {
  /** Destination on the agent; defaults to `<binaries path>/<basename of source>`. */
  readonly destination?: string | undefined
  /** Copy even if the destination is up to date. */
  readonly refresh?: boolean | undefined
  /** Compare md5 sums and re-copy what differs; defaults to `--check-file-consistency`. */
  readonly consistencyCheck?: boolean | undefined
  /**
   * Told what happened to each file (at its path on the agent): copied, or skipped because the agent has the same
   * file (`skipped-same`), any file there (`skipped-unchecked`, consistency check off), or it was copied earlier in
   * the run (`memoized`).
   */
  readonly onOutcome?:
    | ((remote: string, outcome: "copied" | "skipped-same" | "skipped-unchecked" | "memoized") => Effect.Effect<void>)
    | undefined
}

export interface Runner {
  /** Runs `command args…` to completion. A non-zero exit is a result, not an error. */
  exec(
    command: string,
    args: ReadonlyArray<string>,
    options?: ExecOptions
  ): Effect.Effect<ExecResult, CloudError.CloudError>
  /** Starts a daemon owned by the current scope and returns as soon as it runs. */
  spawn(
    name: string,
    command: string,
    args: ReadonlyArray<string>,
    options?: SpawnOptions
  ): Effect.Effect<Daemon, CloudError.CloudError, Scope.Scope>
  /** Copies a local file or directory to the agent; returns the path on the agent. */
  copy(source: string, options?: CopyOptions): Effect.Effect<string, CloudError.CloudError>
}

/**
 * Why a daemon's program cannot start on an agent, in the words every backend uses: a command with a `/` must be
 * an executable file, one without must be found on the agent's `PATH`. `spawn` fails with it rather than start a
 * daemon that exits at once.
 */
export const notStartable = (command: string): string =>
  command.includes("/") ? `${command} is not an executable file` : `${command} is not found on the agent's PATH`

/**
 * The same check, for agents reached through a shell (an absolute COMMAND the sandbox has is its own, as
 * `Sandbox.mapArgv` maps it): `sh -c "$programCheck" sh COMMAND` exits 127 with `notStartable(COMMAND)` on stderr
 * when COMMAND cannot start, 0 otherwise.
 */
export const programCheck = `c=$1; case $c in /?*) [ -e "$TEZT_CLOUD_FS$c" ] && c=$TEZT_CLOUD_FS$c;; esac; ` +
  `case $c in */*) [ -f "$c" ] && [ -x "$c" ] || { echo "$1 is not an executable file" >&2; exit 127; } ;; ` +
  `*) command -v "$c" >/dev/null 2>&1 || { echo "$1 is not found on the agent's PATH" >&2; exit 127; } ;; esac`
