/**
 * `tezt-cloud proxy attach|status|logs|stop --tezt-cloud NS`: the recorded `--proxy` run of a namespace, from any
 * terminal of the machine that started it. `attach` is what rerunning the run's command does; `status` asks the
 * proxy's server; `logs` prints the run's log (all of it, or from `--from`) without moving where `attach` resumes;
 * `stop` tears the run down on the proxy, shows the teardown, fetches the artifacts and removes the proxy.
 */
import { Ledger, RunEvents } from "@tezt-cloud/core"
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import * as Backends from "../Backends.ts"
import * as Root from "../Root.ts"
import * as Shutdown from "../Shutdown.ts"
import * as Terminal from "../Terminal.ts"

/** A `--proxy` run stopped by Ctrl+C tears the run down on the proxy; any other stop only detaches from it. */
export const stopKind = (shutdown: Shutdown.Shutdown["Service"]) =>
  Effect.map(
    shutdown.stopped,
    (stop): "teardown" | "detach" => stop?._tag === "Signal" && stop.signal === "SIGINT" ? "teardown" : "detach"
  )

const namespaceFlag = Flag.String("tezt-cloud").pipe(
  Flag.withDescription("Namespace of the --proxy run (default: $TEZT_CLOUD)"),
  Flag.optional
)
const jsonFlag = Flag.Boolean("json").pipe(
  Flag.withDescription("Print the run's events as JSON lines"),
  Flag.withDefault(false)
)

/** What every subcommand needs: the proxy package, and the options of the namespace's recorded run. */
const recorded = (stateDir: string, namespace: Option.Option<string>, json: boolean) =>
  Effect.gen(function*() {
    const proxy = yield* Effect.promise(() => Backends.proxyPackage())
    const config = yield* proxy.Proxy.recordedConfig(stateDir, Option.getOrUndefined(namespace), process.env)
    const shutdown = yield* Shutdown.Shutdown
    const sink = Terminal.sinkFor(json)
    const options = yield* proxy.Proxy.runOptions({
      config,
      run: { group: "", tags: [], input: {} },
      stateDir,
      artifactsDir: "",
      scenarios: undefined,
      sink,
      stopKind: stopKind(shutdown)
    })
    return { proxy, options, shutdown, sink }
  })

/** A subcommand's effect with the namespace's ledger, its messages shown as the run's events are. */
const provided =
  (stateDir: string, namespace: string, sink: RunEvents.Sink) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    effect.pipe(
      Effect.provide(Ledger.Ledger.layer(stateDir, namespace)),
      Effect.provide(RunEvents.RunEvents.layerWithLogger([sink]))
    )

const attach = (stateDir: string) =>
  Command.make("attach", { namespace: namespaceFlag, json: jsonFlag }, ({ json, namespace }) =>
    Effect.gen(function*() {
      const { options, proxy, shutdown, sink } = yield* recorded(stateDir, namespace, json)
      const code = yield* proxy.ProxyRun.run({ ...options, deploy: false }).pipe(
        provided(stateDir, options.config.namespace, sink)
      )
      yield* shutdown.exitWith(code)
    })).pipe(Command.withDescription("Show the run's log from where this machine left it (Ctrl+D detaches)"))

const status = (stateDir: string) =>
  Command.make("status", { namespace: namespaceFlag }, ({ namespace }) =>
    Effect.gen(function*() {
      const { options, proxy, sink } = yield* recorded(stateDir, namespace, false)
      const s = yield* proxy.ProxyRun.status(options).pipe(provided(stateDir, options.config.namespace, sink))
      yield* Console.log(
        `${s.namespace}: ${s.state}${s.exitCode === undefined ? "" : ` (exit code ${s.exitCode})`}, pid ${s.pid} ` +
          `on the proxy, started ${s.startedAt}, ${s.logBytes} bytes of log` +
          (s.interrupts > 0 ? `, asked to tear down ${s.interrupts} time(s)` : "")
      )
      yield* Console.log(`command: ${s.argv.join(" ")}`)
    })).pipe(Command.withDescription("Say whether the run on the proxy is running or has ended"))

const logs = (stateDir: string) =>
  Command.make("logs", {
    namespace: namespaceFlag,
    json: jsonFlag,
    from: Flag.Int("from").pipe(
      Flag.withDescription("Start at this byte offset of the log (a line's start)"),
      Flag.withDefault(0)
    ),
    follow: Flag.Boolean("follow").pipe(
      Flag.withDescription("Wait for more until the run ends"),
      Flag.withDefault(false)
    )
  }, ({ follow, from, json, namespace }) =>
    Effect.gen(function*() {
      const { options, proxy, sink } = yield* recorded(stateDir, namespace, json)
      const end = yield* proxy.ProxyRun.logs(options, from, follow).pipe(
        provided(stateDir, options.config.namespace, sink)
      )
      if (end._tag === "Caught") yield* Console.error(`(the run goes on; more from offset ${end.next})`)
    })).pipe(Command.withDescription("Print the run's log, from the start or --from OFFSET"))

const stop = (stateDir: string) =>
  Command.make("stop", { namespace: namespaceFlag, json: jsonFlag }, ({ json, namespace }) =>
    Effect.gen(function*() {
      const { options, proxy, shutdown, sink } = yield* recorded(stateDir, namespace, json)
      const code = yield* proxy.ProxyRun.stop(options).pipe(provided(stateDir, options.config.namespace, sink))
      yield* shutdown.exitWith(code)
    })).pipe(Command.withDescription("Tear the run down on the proxy, fetch its artifacts, remove the proxy"))

export const command = (stateDir: string) =>
  Command.make("proxy").pipe(
    Command.withDescription("Act on the --proxy run of a namespace: attach, status, logs, stop"),
    Command.withSubcommands([attach(stateDir), status(stateDir), logs(stateDir), stop(stateDir)])
  )

/** Runs `argv` (`proxy …`) on a tree with only this branch: no scenario group, no backend is loaded. */
export const run = (argv: ReadonlyArray<string>, stateDir: string) => Root.runBranch(command(stateDir), argv)
