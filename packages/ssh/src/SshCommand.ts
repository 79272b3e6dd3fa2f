/**
 * What a command run over ssh is, shared by the connection (SshClient.ts) and its executor (Executor.ts): the
 * program to run, the handlers that receive its pid, output and flow control, how it ended, and what cannot be
 * sent (`invalid`). Nothing here imports either module, so that both can use it.
 */

/** A program to run directly (no shell), in a session of its own, with its environment and directory. */
export interface Command {
  readonly argv: ReadonlyArray<string>
  /** Variables added to the login environment. NUL-free; names are non-empty and hold no `=`. */
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  /** A directory put in front of PATH. */
  readonly pathPrefix?: string | undefined
  /**
   * Through an executor: what is left of the command's process group when it ends (a child it put in the
   * background) is killed then, by the executor (no pass over /proc, no call from the orchestrator).
   */
  readonly killGroupAtExit?: boolean | undefined
}

export interface ExecHandlers {
  /** Called with the command's pid on the host (its process group and session), before any output. */
  readonly onPid?: ((pid: number) => void) | undefined
  readonly onStdout: (chunk: Buffer) => void
  readonly onStderr: (chunk: Buffer) => void
  /**
   * Called once the channel is open, with its flow control: `pause` stops reading (the remote side then blocks
   * when ssh's window is full), `resume` reads on. This is how a slow consumer bounds memory.
   */
  readonly onFlow?: ((flow: Flow) => void) | undefined
  /** What the command reads on stdin (closed when absent). */
  readonly stdin?: AsyncIterable<Uint8Array> | undefined
}

export interface Flow {
  readonly pause: () => void
  readonly resume: () => void
}

export interface ExecExit {
  /** The exit code; for a command killed by a signal, 128 + the signal number, as a shell reports it. */
  readonly code: number
  readonly signal: string | undefined
}

/**
 * Why `what` (a shell line or a `Command`) cannot be sent, or `undefined`. No program can receive a NUL byte in
 * an argument, a variable or its directory (C strings end there), and the executor's frames separate fields
 * with NUL: a value `x\0/path/prog` would run `/path/prog`. A variable's name cannot hold `=` either.
 */
export const invalid = (what: string | Command): string | undefined => {
  const nul = (s: string) => s.includes("\0")
  if (typeof what === "string") return nul(what) ? "the command line contains a NUL byte" : undefined
  if (what.argv.length === 0) return "the command is empty"
  const arg = what.argv.findIndex(nul)
  if (arg >= 0) return `argument ${arg} of ${JSON.stringify(what.argv[0])} contains a NUL byte`
  for (const [name, value] of Object.entries(what.env)) {
    if (nul(name)) return "a variable's name contains a NUL byte"
    if (name === "" || name.includes("=")) return `${JSON.stringify(name)} is not a variable name`
    if (nul(value)) return `the value of ${name} contains a NUL byte`
  }
  if (nul(what.cwd)) return "the working directory contains a NUL byte"
  if (what.pathPrefix !== undefined && nul(what.pathPrefix)) return "the PATH prefix contains a NUL byte"
  return undefined
}
