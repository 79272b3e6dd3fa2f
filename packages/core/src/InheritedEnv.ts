/**
 * What the orchestrator's environment passes on to the processes it starts on this machine (the run's Prometheus;
 * local agents): the variables a program needs to run (`PATH`, locale, time zone, terminal, user, home, temporary
 * directory), never the rest. The rest holds the run's secrets (`$TEZT_CLOUD_GRAFANA_TOKEN`,
 * `$TEZT_CLOUD_AUTH_PASSWORD`, `$TEZTCLOUD_SLACK_BOT_TOKEN`) and whatever else the user's shell carries (cloud
 * credentials, tokens), which a child could leak in a log, a core dump or `/proc/<pid>/environ`.
 */

/** The variables passed on, besides the locale's `LC_*`. */
export const names: ReadonlyArray<string> = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "LANG",
  "LANGUAGE",
  "TZ",
  "TERM",
  "TMPDIR"
]

const passed = new Set(names)

/** Whether `name` is passed on. */
export const isPassed = (name: string): boolean => passed.has(name) || /^LC_[A-Z_]+$/.test(name)

/** The part of `env` a child gets. */
export const inherited = (env: Readonly<Record<string, string | undefined>> = process.env): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && isPassed(name)) out[name] = value
  }
  return out
}
