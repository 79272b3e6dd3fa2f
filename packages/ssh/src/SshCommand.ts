/**
 * What a command run over ssh is, shared by the connection (SshClient.ts) and its executor (Executor.ts): the
 * program to run, the handlers that receive its pid, output and flow control, and how it ended. Types only, so
 * that both modules can use them without importing each other.
 */

/** A program to run directly (no shell), in a session of its own, with its environment and directory. */
export interface Command {
  readonly argv: ReadonlyArray<string>
  /** Variables added to the login environment. NUL-free; names are valid shell names. */
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  /** A directory put in front of PATH. */
  readonly pathPrefix?: string | undefined
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
